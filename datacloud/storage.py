"""Where data-plane files live: a local folder or an S3-compatible object store.

A data-plane location (raw partition, staged or curated Delta table) is either a local
``Path`` or an ``ObjectPath`` (``s3://bucket/key``). Code never branches on which: it asks
this module for the URI (``uri``), the pyarrow file system and path inside it
(``filesystem``), and the deltalake ``storage_options`` (``storage_options``).

Credentials and the endpoint come from the standard variables ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``),
``AWS_ENDPOINT_URL`` and ``AWS_ALLOW_HTTP``. They are passed explicitly to both pyarrow and
delta-rs (pyarrow's S3 client does not read ``AWS_ENDPOINT_URL``), read at each call so a
test or a task can set them, and never logged: ``describe`` shows the endpoint only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlparse

import pyarrow.fs as pafs

SCHEMES = ("s3",)


@dataclass(frozen=True)
class ObjectPath:
    """A location on an S3-compatible object store, ``s3://bucket/key`` (no trailing slash).

    Has the few ``Path`` operations the data plane uses: ``/``, ``parent``, ``name``,
    ``exists``; ``str()`` is the URI.
    """

    uri: str

    def __post_init__(self) -> None:
        parsed = urlparse(self.uri)
        if parsed.scheme not in SCHEMES or not parsed.netloc:
            raise ValueError(f"{self.uri}: not an s3://bucket/prefix location")
        object.__setattr__(self, "uri", self.uri.rstrip("/"))

    def __truediv__(self, part: str) -> ObjectPath:
        return ObjectPath(f"{self.uri}/{part.strip('/')}")

    def __str__(self) -> str:
        return self.uri

    @property
    def bucket(self) -> str:
        return urlparse(self.uri).netloc

    @property
    def key(self) -> str:
        """The key (prefix) inside the bucket, without a leading slash."""
        return urlparse(self.uri).path.lstrip("/")

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1] if self.key else self.bucket

    @property
    def parent(self) -> ObjectPath:
        if not self.key:
            return self
        head = self.key.rsplit("/", 1)[0] if "/" in self.key else ""
        return ObjectPath(f"s3://{self.bucket}/{head}")

    def exists(self) -> bool:
        fs, path = filesystem(self)
        return fs.get_file_info(path).type != pafs.FileType.NotFound


# a data-plane location: a local folder or file, or an object on the store
DataPath: TypeAlias = Path | ObjectPath


def parse(root: str) -> DataPath:
    """A root given as text: ``s3://bucket/prefix`` or a local path (resolved)."""
    if "://" in root:  # Path() would quietly make "s3://b/" a local folder "s3:/b"
        return ObjectPath(root)
    return Path(root).resolve()


def is_object_store(loc: DataPath) -> bool:
    """Whether ``loc`` is on the object store: no rename, no directories, no locks."""
    return isinstance(loc, ObjectPath)


def uri(loc: DataPath) -> str:
    """The location as deltalake and pyarrow take it (a local path or ``s3://...``)."""
    return str(loc)


def s3_setting(*names: str) -> str | None:
    """The first of the environment variables ``names`` that is set (object-store settings)."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def allow_http() -> bool:
    """Whether plain HTTP to the object store is allowed (``AWS_ALLOW_HTTP``, an http endpoint)."""
    flag = (s3_setting("AWS_ALLOW_HTTP") or "").lower() in {"1", "true", "yes"}
    return flag or (s3_setting("AWS_ENDPOINT_URL") or "").startswith("http://")


def storage_options(loc: DataPath) -> dict[str, str] | None:
    """The deltalake (delta-rs ``object_store``) options for ``loc``; None for a local path.

    ``AWS_CONDITIONAL_PUT=etag`` makes delta-rs commit a new log entry with a conditional
    PUT (``If-None-Match``), so two writers of one table cannot both take a version.
    """
    if not is_object_store(loc):
        return None
    opts = {
        "AWS_ACCESS_KEY_ID": s3_setting("AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY": s3_setting("AWS_SECRET_ACCESS_KEY"),
        "AWS_SESSION_TOKEN": s3_setting("AWS_SESSION_TOKEN"),
        "AWS_REGION": s3_setting("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
        "AWS_ENDPOINT_URL": s3_setting("AWS_ENDPOINT_URL"),
        "AWS_ALLOW_HTTP": "true" if allow_http() else None,
        "AWS_CONDITIONAL_PUT": s3_setting("AWS_CONDITIONAL_PUT") or "etag",
    }
    return {k: v for k, v in opts.items() if v is not None}


_LOCAL = pafs.LocalFileSystem()


def _s3() -> pafs.S3FileSystem:
    endpoint = s3_setting("AWS_ENDPOINT_URL")
    scheme = None
    if endpoint:
        parsed = urlparse(endpoint)
        scheme = parsed.scheme or ("http" if allow_http() else "https")
        endpoint = parsed.netloc or parsed.path
    return pafs.S3FileSystem(
        access_key=s3_setting("AWS_ACCESS_KEY_ID"),
        secret_key=s3_setting("AWS_SECRET_ACCESS_KEY"),
        session_token=s3_setting("AWS_SESSION_TOKEN"),
        region=s3_setting("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_override=endpoint,
        scheme=scheme,
    )


def filesystem(loc: DataPath) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system holding ``loc`` and the path of ``loc`` inside it."""
    if isinstance(loc, ObjectPath):
        return _s3(), f"{loc.bucket}/{loc.key}".rstrip("/")
    return _LOCAL, str(loc)


def describe(loc: DataPath) -> str:
    """``loc`` for a log line or a summary: the URI and, on the store, the endpoint (no keys)."""
    if not is_object_store(loc):
        return str(loc)
    return f"{loc} (endpoint {s3_setting('AWS_ENDPOINT_URL') or 'AWS'})"


def prepare_parent(loc: DataPath) -> None:
    """Make the parent folder of a local ``loc``; the object store needs none."""
    if isinstance(loc, Path):
        loc.parent.mkdir(parents=True, exist_ok=True)


def list_names(loc: DataPath) -> list[str] | None:
    """The names directly under the folder (prefix) ``loc``; None when there is nothing there."""
    fs, path = filesystem(loc)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    if not infos and fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    return [i.base_name for i in infos]
