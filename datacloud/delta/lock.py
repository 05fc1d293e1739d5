"""One writer at a time per curated table: ``publish`` and ``maintain`` hold its lock.

- **Local storage**: ``fcntl.flock`` on a lock file beside the table (``<parent>/.<name>.lock``,
  outside ``_delta_log`` and outside the table folder, so vacuum never sees it). Every process
  of a host (Celery workers, ``airflow dags test``, the CLI) shares it; the kernel releases it
  when its process dies, so a killed publish never leaves the table locked.
- **Object store**: a lease object beside the table (``<parent>/.<name>.lease``) created with a
  conditional PUT (``If-None-Match: *``), holding its owner and expiry. It is renewed while
  held (``If-Match`` on its ETag), deleted at the end, and taken over by another writer only
  after it expired (again ``If-Match``, so two writers cannot both take it over). This is the
  mechanism across hosts. A holder whose lease was taken over (it stalled past the expiry)
  finds out at ``check`` before its commit and gives up.

The S3 requests are signed here (AWS Signature V4 over ``httpx``): neither pyarrow's S3 file
system nor deltalake exposes a conditional PUT. The same ``put_if_absent`` commits the
log entries of our own commits on the object store (``commit.write_entry``), the way delta-rs
commits there with ``AWS_CONDITIONAL_PUT=etag``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from datacloud.storage import DataPath, ObjectPath, is_object_store
from datacloud.storage import allow_http as _allow_http
from datacloud.storage import s3_setting as _env

# how long a publish waits for another writer of the same table before giving up
WAIT_S = float(os.environ.get("DATACLOUD_TABLE_LOCK_WAIT_S", 3 * 3600))
# an object-store lease lasts this long unless renewed (renewed every third of it)
LEASE_S = float(os.environ.get("DATACLOUD_TABLE_LEASE_S", 600))


class TableLocked(RuntimeError):
    """Another writer held the table's lock for longer than the wait."""


class LeaseLost(RuntimeError):
    """The object-store lease expired and another writer took it over: do not commit."""


@dataclass
class _Held:
    path: str
    count: int = 1
    lost: threading.Event = field(default_factory=threading.Event)


_HELD: dict[str, _Held] = {}
_HELD_LOCK = threading.Lock()


def lock_location(path: DataPath) -> DataPath:
    """The lock file (local) or lease object (object store) of the table at ``path``."""
    suffix = ".lease" if is_object_store(path) else ".lock"
    return path.parent / f".{path.name}{suffix}"


def owner_id() -> str:
    """Who holds a lock: host, process and a random part (two holders never look alike)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def table_lock(
    path: DataPath, *, wait_s: float | None = None, lease_s: float | None = None
) -> Iterator[None]:
    """Hold the table's exclusive lock for the block (re-entrant within one thread)."""
    name = str(path)
    key = f"{name}@{threading.get_ident()}"
    with _HELD_LOCK:
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
    if held is not None:
        try:
            yield
        finally:
            held.count -= 1
        return
    wait = WAIT_S if wait_s is None else wait_s
    lease = LEASE_S if lease_s is None else lease_s
    held = _Held(name)
    if is_object_store(path):
        assert isinstance(path, ObjectPath)
        cm = _lease(path, wait, lease, held)
    else:
        assert isinstance(path, Path)
        cm = _flock(path, wait)
    with cm:
        with _HELD_LOCK:
            _HELD[key] = held
        try:
            yield
        finally:
            with _HELD_LOCK:
                _HELD.pop(key, None)


def check(path: DataPath) -> None:
    """Raise ``LeaseLost`` when this thread's lease of the table was taken over."""
    held = _HELD.get(f"{path}@{threading.get_ident()}")
    if held is not None and held.lost.is_set():
        raise LeaseLost(f"{path}: the table's lease expired and another writer took it over")


def _backoff(attempt: int) -> float:
    return min(2.0, 0.02 * 2 ** min(attempt, 8)) * random.uniform(0.5, 1.0)


@contextlib.contextmanager
def _flock(path: Path, wait_s: float) -> Iterator[None]:
    where = lock_location(path)
    assert isinstance(where, Path)
    where.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        attempt = 0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TableLocked(
                        f"{path}: another writer held the table's lock ({where}) "
                        f"for more than {wait_s:.0f} s"
                    ) from None
                time.sleep(_backoff(attempt))
                attempt += 1
        os.ftruncate(fd, 0)  # for an operator: who holds it
        os.pwrite(fd, f"{owner_id()} {time.time():.0f}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _lease(path: ObjectPath, wait_s: float, lease_s: float, held: _Held) -> Iterator[None]:
    where = lock_location(path)
    assert isinstance(where, ObjectPath)
    owner = owner_id()
    deadline = time.monotonic() + wait_s
    attempt = 0
    etag: str | None = None
    while etag is None:
        body = json.dumps({"owner": owner, "expires": time.time() + lease_s}).encode()
        etag = put_if_absent(where, body)
        if etag is None:
            current = get_object(where)
            if current is not None:
                doc, their_etag = current
                try:
                    expires = float(json.loads(doc)["expires"])
                except (ValueError, KeyError, TypeError):
                    expires = 0.0  # unreadable lease: as expired
                if expires < time.time():  # take it over, unless someone else just did
                    etag = put_if_match(where, body, their_etag)
        if etag is None:
            if time.monotonic() >= deadline:
                raise TableLocked(
                    f"{path}: another writer held the table's lease ({where}) "
                    f"for more than {wait_s:.0f} s"
                )
            time.sleep(_backoff(attempt))
            attempt += 1
    state = {"etag": etag}
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease_s / 3):
            body = json.dumps({"owner": owner, "expires": time.time() + lease_s}).encode()
            try:
                new = put_if_match(where, body, state["etag"])
            except OSError:
                continue  # the store did not answer: try again before the expiry
            if new is None:
                held.lost.set()
                return
            state["etag"] = new

    renewer = threading.Thread(target=renew, name=f"lease {where}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(timeout=30)
        if not held.lost.is_set():
            delete_if_match(where, state["etag"])


# --- S3 requests (AWS Signature V4) -------------------------------------------------------


def _endpoint(bucket: str) -> tuple[str, str]:
    """(base URL, path prefix) for path-style requests to ``bucket``."""
    endpoint = _env("AWS_ENDPOINT_URL")
    if endpoint:
        if "://" not in endpoint:
            endpoint = ("http://" if _allow_http() else "https://") + endpoint
        return endpoint.rstrip("/"), f"/{bucket}"
    region = _env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1"
    return f"https://{bucket}.s3.{region}.amazonaws.com", ""


def _request(
    method: str, loc: ObjectPath, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    import httpx

    base, prefix = _endpoint(loc.bucket)
    canonical_uri = quote(f"{prefix}/{loc.key}", safe="/-_.~")
    host = base.split("://", 1)[1]
    region = _env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1"
    now = dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    payload = hashlib.sha256(body).hexdigest()
    signed = {
        "host": host,
        "x-amz-content-sha256": payload,
        "x-amz-date": amz_date,
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    token = _env("AWS_SESSION_TOKEN")
    if token:
        signed["x-amz-security-token"] = token
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            canonical_uri,
            "",
            "".join(f"{n}:{signed[n].strip()}\n" for n in names),
            ";".join(names),
            payload,
        ]
    )
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + (_env("AWS_SECRET_ACCESS_KEY") or "")).encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    auth = (
        f"AWS4-HMAC-SHA256 Credential={_env('AWS_ACCESS_KEY_ID') or ''}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    send = {k: v for k, v in signed.items() if k != "host"} | {"authorization": auth}
    try:
        r = httpx.request(method, base + canonical_uri, content=body, headers=send, timeout=60)
    except httpx.HTTPError as e:
        raise OSError(f"{loc}: {method} failed: {type(e).__name__}") from e
    return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content


def _ok(status: int, loc: ObjectPath, method: str) -> None:
    if status >= 300:
        raise OSError(f"{loc}: {method} answered HTTP {status}")


def put_if_absent(loc: ObjectPath, body: bytes) -> str | None:
    """Create the object only if none exists (``If-None-Match: *``): its ETag, or None when
    it exists already (HTTP 412, or 409 from a store resolving two racing creates)."""
    status, headers, _ = _request("PUT", loc, body, {"If-None-Match": "*"})
    if status in (409, 412):
        return None
    _ok(status, loc, "PUT")
    return headers.get("etag", "")


def put_if_match(loc: ObjectPath, body: bytes, etag: str) -> str | None:
    """Replace the object only if its ETag is still ``etag``: the new ETag, or None."""
    status, headers, _ = _request("PUT", loc, body, {"If-Match": etag})
    if status in (404, 409, 412):
        return None
    _ok(status, loc, "PUT")
    return headers.get("etag", "")


def get_object(loc: ObjectPath) -> tuple[bytes, str] | None:
    """The object's content and ETag, or None when there is none."""
    status, headers, body = _request("GET", loc)
    if status == 404:
        return None
    _ok(status, loc, "GET")
    return body, headers.get("etag", "")


def delete_if_match(loc: ObjectPath, etag: str) -> None:
    """Delete the object if it is still the one with ``etag`` (checked by reading it first:
    not every store honours ``If-Match`` on DELETE)."""
    current = get_object(loc)
    if current is None or current[1].strip('"') != etag.strip('"'):
        return
    status, _, _ = _request("DELETE", loc, b"", {"If-Match": etag})
    if status not in (404, 412):
        _ok(status, loc, "DELETE")
