"""The lookup server as a province runs it: several worker processes on one socket serving the
paged files, lookups hammered while a new version is published, the audit trail verified after.

Real server (``python -m datacloud.lookup.api --workers 2`` in a subprocess), real Delta tables,
real HTTP, real ``datacloud audit verify``; nothing is mocked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from datacloud.delta import overwrite
from datacloud.lookup.auth import hash_key
from datacloud.lookup.paged import PagedSnapshot
from datacloud.lookup.store import CuratedStore
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

REPO = Path(__file__).resolve().parents[2]
KEY = "scale-test-auditor-key-0001"
AUDIT_KEY = "scale-test-audit-key-0123456789"
M = {"matter": "property_registration", "case_no": "SCALE-1"}  # reads the person's name
THREADS, EACH = 6, 120  # requests per thread before the publish, and as many after


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


IDS = [_id(f"330106198001{d:02d}{s:03d}") for d in range(1, 11) for s in range(1, 4)]


def _publish(root: StorageRoot, name: str, ds: str) -> None:
    n = len(IDS)
    person = pa.table(
        {
            "id_number": IDS,
            "name": [f"{name}{i}" for i in range(n)],
            "name_source": ["gongan"] * n,
            "name_as_of": pa.array([date.fromisoformat(ds)] * n, pa.date32()),
        }
    )
    rights = pa.table(
        {
            "certificate_no": [f"浙(2020)第{i}号" for i in range(n)],
            "owner_id_number": IDS,
            "status": ["现势"] * n,
            "source": ["bdc"] * n,
            "as_of": pa.array([date.fromisoformat(ds)] * n, pa.date32()),
        }
    )
    overwrite(root.curated("person"), person, ["id_number"], f"run-{ds}", ds)
    overwrite(root.curated("property_right"), rights, ["owner_id_number"], f"run-{ds}", ds)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keys_file(folder: Path) -> Path:
    path = folder / "keys.yaml"
    path.write_text(
        "keys:\n"
        f"  - holder: 压测审计\n    role: auditor\n    matters: [property_registration]\n"
        f"    sha256: {hash_key(KEY)}\n"
        "limits:\n  roles:\n    auditor: {rate: 100000/minute, quota: 1000000/day}\n",
        encoding="utf-8",
    )
    return path


def _wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    for _ in range(600):  # up to ~60 s
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            r = httpx.get(f"{base}/healthz", timeout=1)
            if r.status_code == 200 and r.json()["curated_versions"]:
                return dict(r.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not come up")


def test_two_workers_swap_under_load_with_one_verified_audit_trail(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path / "root")
    _publish(root, "旧", "2026-11-20")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATACLOUD_ROOT": str(root.root),
        "DATACLOUD_AUDIT_KEY": AUDIT_KEY,
        "PYTHONPATH": str(REPO),
    }
    env.pop("DATACLOUD_STATE_ROOT", None)
    env.pop("DATACLOUD_LOOKUP_DEV", None)
    cmd = [sys.executable, "-m", "datacloud.lookup.api", "--port", str(port)]
    cmd += ["--keys", str(_keys_file(tmp_path)), "--workers", "2", "--poll-seconds", "0.2"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    answers: list[tuple[int, str | None, int | None]] = []
    lock = threading.Lock()
    published = threading.Event()
    try:
        _wait_healthy(base, proc)

        def hammer(t: int) -> None:
            with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as client:
                for phase in (0, 1):
                    if phase:
                        published.wait(timeout=120)
                    for i in range(EACH):
                        key = IDS[(t * 7 + i) % len(IDS)]
                        body = {"id_number": key, "purpose": "压测", **M}
                        r = client.post("/v1/lookup/person", json=body)
                        got = r.json() if r.status_code == 200 else {}
                        name = got.get("fields", {}).get("name", {}).get("value")
                        version = got.get("curated", {}).get("person", {}).get("version")
                        with lock:
                            answers.append((r.status_code, name, version))

        pool = [threading.Thread(target=hammer, args=(t,)) for t in range(THREADS)]
        for th in pool:
            th.start()
        for _ in range(600):  # publish while the first phase is under way
            with lock:
                if len(answers) >= THREADS * EACH // 3:
                    break
            time.sleep(0.01)
        _publish(root, "新", "2026-11-21")
        published.set()
        for th in pool:
            th.join(timeout=300)
        assert not any(th.is_alive() for th in pool)
        # both workers pick the new version up: a run of new answers, bounded
        seen_new = 0
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as client:
            for _ in range(2000):
                r = client.post(
                    "/v1/lookup/person", json={"id_number": IDS[0], "purpose": "压测", **M}
                )
                answers.append(
                    (
                        r.status_code,
                        r.json()["fields"]["name"]["value"],
                        r.json()["curated"]["person"]["version"],
                    )
                )
                seen_new = seen_new + 1 if answers[-1][2] == 1 else 0
                if seen_new >= 40:
                    break
                time.sleep(0.01)
        assert seen_new >= 40
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert {status for status, _, _ in answers} == {200}, "a request failed"
    for _, name, version in answers:  # the old version's answer or the new one's, never mixed
        assert (name or "")[:1] == {0: "旧", 1: "新"}.get(version, "?"), (name, version)
    assert {v for _, _, v in answers} == {0, 1}
    verify = subprocess.run(
        [
            str(Path(sys.executable).with_name("datacloud")),
            "audit",
            "verify",
            "--folder",
            str(root.audit()),
            "--json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    lookups = [
        json.loads(line)
        for f in sorted(root.audit().glob("lookups-*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
    ]
    assert sum(1 for r in lookups if r.get("kind") == "lookup") == len(answers)


def test_the_store_serves_paged_files_and_swaps_whole_under_a_hammering_thread(
    tmp_path: Path,
) -> None:
    root = StorageRoot(tmp_path / "root")
    _publish(root, "旧", "2026-11-20")
    store = CuratedStore(root, poll_seconds=0.05)
    store.start()
    seen: list[tuple[str, int | None]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        for i in range(200_000):  # bounded; stopped long before
            if stop.is_set():
                return
            try:
                snap = store.current()
                rows = snap.rows("person", "id_number", IDS[i % len(IDS)])
                seen.append((rows[0]["name"], snap.version("person")))
            except BaseException as e:
                errors.append(e)
                return

    try:
        assert isinstance(store.current(), PagedSnapshot)
        th = threading.Thread(target=hammer)
        th.start()
        _publish(root, "新", "2026-11-21")
        for _ in range(1200):  # the poller picks it up (bounded, ~60 s at most)
            if store.serving() is not None and store.serving().version("person") == 1:  # type: ignore[union-attr]
                break
            time.sleep(0.05)
        n = len(seen)
        for _ in range(200):  # some lookups on the new version
            if len(seen) > n + 100:
                break
            time.sleep(0.01)
        stop.set()
        th.join(timeout=30)
    finally:
        store.stop()
    assert errors == []
    assert {v for _, v in seen} == {0, 1}
    for name, version in seen:
        assert name[:1] == {0: "旧", 1: "新"}[version]
    firsts = [i for i, (_, v) in enumerate(seen) if v == 1]
    assert all(v == 1 for _, v in seen[firsts[0] :])  # never back to the old one


@pytest.fixture(autouse=True)
def _no_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATACLOUD_LOOKUP_DEV", raising=False)
