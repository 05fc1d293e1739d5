"""Serving the latest published curated version, and earlier ones on demand.

``CuratedStore.current()`` returns the snapshot being served: one reference, read without a
lock. ``refresh()`` compares the newest version of each curated table (a ``_delta_log``
listing, no table load) with the snapshot's; when a table was published since, it opens a new
paged snapshot (``datacloud.lookup.paged``: the version's files, built once per version by
the first replica that needs them, the others wait for its lock and open them) beside the old
one and swaps it in with one assignment, so requests in flight finish on the old snapshot and
the next ones see the new, whole. ``start()`` runs ``refresh()`` every ``poll_seconds``
(default 1) in a daemon thread. ``as_of(ds)`` answers from the versions each table had on
business date ``ds`` (``datacloud.delta.version_as_of``), opened (built if need be) on demand
and kept in a small LRU cache.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from datacloud.lookup.paged import PagedSnapshot
from datacloud.lookup.snapshot import published_versions
from datacloud.paths import StorageRoot

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0  # a publish is seen within this (a _delta_log listing per table per poll)


class NoCuratedData(LookupError):
    """Nothing is published yet, or nothing as old as the requested date."""


class CuratedStore:
    """The curated snapshot being served, switched atomically after a publish."""

    # today's lookups read the paged files (a few ``pread`` from the page cache, microseconds):
    # the lean path runs them on the event loop (``datacloud.lookup.fastpath``); a view behind
    # a network (a database) has no such flag and runs on a worker thread
    answers_inline = True

    def __init__(
        self, root: StorageRoot, poll_seconds: float = POLL_SECONDS, as_of_cache: int = 3
    ) -> None:
        self.root = root
        self.poll_seconds = poll_seconds
        self._current: PagedSnapshot | None = None
        self._build_lock = threading.Lock()
        self._as_of: OrderedDict[tuple[tuple[str, int], ...], PagedSnapshot] = OrderedDict()
        self._as_of_size = as_of_cache
        self._as_of_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load and swap in a newer published version if there is one; True when swapped."""
        with self._build_lock:
            versions = published_versions(self.root)
            current = self._current
            if current is not None and versions == {
                k: v.version for k, v in current.versions.items()
            }:
                return False
            if "person" not in versions:
                return False
            snapshot = PagedSnapshot.open(self.root, versions)
            self._current = snapshot  # the swap: one reference assignment
            log.info(
                "lookup: serving curated versions %s (%.0f MB of files, paged in on demand)",
                versions,
                snapshot.nbytes / 1e6,
            )
            return True

    def serving(self) -> PagedSnapshot | None:
        """The snapshot being served, or None before the first load (never loads)."""
        return self._current

    def current(self) -> PagedSnapshot:
        snapshot = self._current
        if snapshot is None:
            self.refresh()
            snapshot = self._current
        if snapshot is None:
            raise NoCuratedData("no curated person table is published yet")
        return snapshot

    def as_of(self, ds: str) -> PagedSnapshot:
        """The snapshot of the versions each curated table had on business date ``ds``."""
        versions = published_versions(self.root, ds)
        if "person" not in versions:
            raise NoCuratedData(f"no curated data published on or before {ds}")
        current = self._current
        if current is not None and versions == {k: v.version for k, v in current.versions.items()}:
            return current
        key = tuple(sorted(versions.items()))
        with self._as_of_lock:
            cached = self._as_of.get(key)
            if cached is not None:
                self._as_of.move_to_end(key)
                return cached
            try:
                snapshot = PagedSnapshot.open(self.root, versions)
            except Exception as e:  # files of an old version removed by vacuum, or unreadable
                log.warning("curated versions %s unreadable: %s", versions, type(e).__name__)
                raise NoCuratedData(
                    f"the curated tables as of {ds} can no longer be read (older than the "
                    "history kept, publishing.retention_days in dags/curation.yaml)"
                ) from None
            self._as_of[key] = snapshot
            while len(self._as_of) > self._as_of_size:
                self._as_of.popitem(last=False)
            return snapshot

    def start(self) -> None:
        """Load the latest version now and poll for newer ones in a daemon thread."""
        self.refresh()
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="lookup-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # keep serving the old snapshot; the next poll tries again
                log.exception("lookup: loading the new curated version failed")
