"""Audit record ids: uuid4-shaped, unique, and a forked worker never repeats its parent's."""

from __future__ import annotations

import os
import uuid

from datacloud.lookup.audit import record_id


def test_ids_are_version_4_uuids_and_unique_across_buffer_refills() -> None:
    ids = [record_id() for _ in range(2000)]  # several refills of the 256-id buffer
    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and parsed.hex == value


def test_a_forked_child_does_not_reuse_the_parents_buffer() -> None:
    record_id()  # the parent's buffer holds unused ids now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then exit without running pytest's teardown
        os.write(write, record_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32
    assert child != record_id()  # the parent's next id: what a shared buffer would give both
