"""The storage roots: where every path comes from."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from datacloud.paths import StorageRoot
from datacloud.storage import ObjectPath, filesystem, storage_options


def test_an_object_store_root_needs_a_state_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATACLOUD_ROOT", "s3://datacloud/")
    monkeypatch.delenv("DATACLOUD_STATE_ROOT", raising=False)
    with pytest.raises(ValueError, match="set DATACLOUD_STATE_ROOT"):
        StorageRoot.from_env()


def test_the_state_root_cannot_be_an_object_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATACLOUD_ROOT", "s3://datacloud/")
    monkeypatch.setenv("DATACLOUD_STATE_ROOT", "s3://datacloud/state")
    with pytest.raises(ValueError, match="DATACLOUD_STATE_ROOT=s3://datacloud/state"):
        StorageRoot.from_env()


def test_an_object_store_root_holds_the_data_plane_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATACLOUD_ROOT", "s3://datacloud/prod/")
    monkeypatch.setenv("DATACLOUD_STATE_ROOT", str(tmp_path / "state"))
    root = StorageRoot.from_env()
    ds = date(2026, 11, 20)
    assert str(root.raw_partition("gongan", "czrk", ds)) == (
        "s3://datacloud/prod/raw/gongan/czrk/ds=2026-11-20"
    )
    assert str(root.staged("gongan", "czrk")) == "s3://datacloud/prod/staged/gongan/czrk"
    assert str(root.curated("person")) == "s3://datacloud/prod/curated/person"
    assert root.run_state("gongan", ds) == tmp_path / "state" / "runs" / "gongan" / "2026-11-20"
    assert root.rejected("gongan", "czrk", ds).is_relative_to(tmp_path / "state")
    assert root.report_dir("gongan", ds).is_relative_to(tmp_path / "state")


def test_a_local_root_is_resolved_and_holds_both_planes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATACLOUD_ROOT", str(tmp_path / "a" / ".." / "root"))
    monkeypatch.delenv("DATACLOUD_STATE_ROOT", raising=False)
    root = StorageRoot.from_env()
    assert root.root == tmp_path / "root"
    assert root.curated("person") == tmp_path / "root" / "curated" / "person"


def test_object_paths_compose_like_paths() -> None:
    p = ObjectPath("s3://bucket/prefix/") / "raw" / "ds=2026-11-20"
    assert p.uri == "s3://bucket/prefix/raw/ds=2026-11-20"
    assert (p.bucket, p.key, p.name) == ("bucket", "prefix/raw/ds=2026-11-20", "ds=2026-11-20")
    assert p.parent == ObjectPath("s3://bucket/prefix/raw")
    with pytest.raises(ValueError, match="not an s3://bucket/prefix"):
        ObjectPath("gs://bucket/x")


def test_store_options_come_from_the_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_REGION", "cn-east-1")
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    monkeypatch.delenv("AWS_CONDITIONAL_PUT", raising=False)
    loc = ObjectPath("s3://bucket/prefix")
    opts = storage_options(loc)
    assert opts is not None
    assert opts["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert opts["AWS_ALLOW_HTTP"] == "true"  # an http:// endpoint needs it in delta-rs
    assert opts["AWS_REGION"] == "cn-east-1"
    assert opts["AWS_CONDITIONAL_PUT"] == "etag"
    assert storage_options(Path("/tmp/x")) is None
    fs, path = filesystem(loc)
    assert (fs.type_name, path) == ("s3", "bucket/prefix")
    assert fs.region == "cn-east-1"


@pytest.mark.parametrize("dept", ["gjj\n", "../gjj", "gjj/x", "", "Gjj", "gjj\x00"])
def test_a_department_path_component_must_be_a_code_and_nothing_else(
    tmp_path: Path, dept: str
) -> None:
    root = StorageRoot(tmp_path, tmp_path)
    with pytest.raises(ValueError, match="not a safe path component"):
        root.problem_responses(dept)
