"""The storage root: where every path comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from datacloud.paths import StorageRoot


def test_an_object_store_root_is_refused_not_made_a_local_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATACLOUD_ROOT", "s3://datacloud/")
    with pytest.raises(ValueError, match="object-store roots are not supported"):
        StorageRoot.from_env()


def test_a_local_root_is_resolved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATACLOUD_ROOT", str(tmp_path / "a" / ".." / "root"))
    assert StorageRoot.from_env().root == tmp_path / "root"
