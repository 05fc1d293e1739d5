"""A new curated version is picked up under load with no failed request and no answer from a
half-built serving file: the publish builds the serving files (``paged.build_serving_files``,
the curation night's hook) and the service switches when they exist.

Real parts: a sample night's curated Delta tables, a new ``person`` version committed with
the curated writer (``datacloud.delta.overwrite``) while a loop of lookups runs through the
app (the store polling every 50 ms, as the served app does every second), a real file audit
trail. The loop is bounded by a request count; no time is asserted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import lookup_matters
import pytest
from fastapi.testclient import TestClient
from helpers import built_night_root
from lookup_matters import ALL

from datacloud.delta import overwrite, read_table
from datacloud.lookup import paged
from datacloud.lookup.api import create_app
from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.auth import ApiKeyEntry, ApiKeys, hash_key
from datacloud.lookup.limits import LookupLimits, RoleLimits
from datacloud.lookup.service import LookupService
from datacloud.lookup.snapshot import latest_version
from datacloud.lookup.store import CuratedStore
from datacloud.paths import StorageRoot

DS = date(2026, 11, 20)
KEY = "swap-auditor-key-0001"
KEYS = ApiKeys(
    [ApiKeyEntry(holder="审计员A", role="auditor", matters=(ALL,), sha256=hash_key(KEY))],
    LookupLimits(roles={"auditor": RoleLimits(rate="100000/minute", quota="1000000/day")}),
)
MAX_REQUESTS = 3000  # the loop's bound: the swap is seen long before


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageRoot]:
    with built_night_root(tmp_path_factory, "swap", 200, DS, "swap-test") as r:
        yield r


def test_a_publish_is_served_under_load_with_no_failed_request(root: StorageRoot) -> None:
    store = CuratedStore(root, poll_seconds=0.05)
    service = LookupService(
        store,
        AuditLog([FileSink(root.root / "audit")], b"swap-audit-key-0123456789"),
        catalogue=lookup_matters.catalogue(),
    )
    person = read_table(root.curated("person"))
    numbers = person["id_number"].to_pylist()[:20]
    old = latest_version(root.curated("person"))
    assert old is not None
    new_version: list[int] = []
    answers: list[tuple[int, Any]] = []  # status, the answer's person version

    with TestClient(create_app(service, KEYS, store)) as client:

        def load() -> None:
            for i in range(MAX_REQUESTS):  # bounded; stops once the new version is served
                r = client.post(
                    "/v1/lookup/person",
                    json={**lookup_matters.body(), "id_number": numbers[i % len(numbers)]},
                    headers={"X-API-Key": KEY},
                )
                version = r.json().get("curated", {}).get("person", {}).get("version")
                answers.append((r.status_code, version))
                if new_version and [v for _, v in answers[-20:]] == new_version * 20:
                    break

        loader = threading.Thread(target=load)
        loader.start()
        while len(answers) < 20 and loader.is_alive():  # under load before the publish
            threading.Event().wait(0.01)
        # the publish: a new version of person (the curated writer: one person fewer, none of
        # the looked-up ones), then the night's hook
        changed = person.slice(0, person.num_rows - 1)
        version = overwrite(root.curated("person"), changed, ["id_number"], "swap-2", "2026-11-21")
        built = paged.build_serving_files(root, "person", version)
        new_version.append(version)
        loader.join(timeout=600)

    assert built is not None and (built / "meta.json").is_file()
    assert version == old + 1
    statuses = {status for status, _ in answers}
    assert statuses == {200}, statuses  # no request failed during the swap
    versions = [v for _, v in answers]
    assert set(versions) <= {old, version}  # never an answer from anything else
    assert versions[0] == old and versions[-1] == version  # the old, then the new
    first_new = versions.index(version)
    assert all(v == version for v in versions[first_new:])  # once switched, never back
    assert paged.build_serving_files(root, "no_such_table", 0) is None
