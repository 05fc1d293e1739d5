"""The pure parts of ``bench/night.py``: sizes, the per-stage breakdown, the scale figure,
the Airflow share and the shape of bench/results/night.json (written to a temporary folder;
no database, no night: the figures are made up here and say nothing about speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import harness, night


def test_sizes_from_rows_env_or_default() -> None:
    assert night.sizes(250_000, "1M,3M") == [250_000]
    assert night.sizes(None, "10M, 1M,3_000_000,1m") == [1_000_000, 3_000_000, 10_000_000]
    assert night.sizes(None, "100k") == [100_000]
    assert night.sizes(None, None) == [1_000_000]
    with pytest.raises(ValueError):
        night.parse_count("0")


def test_labels() -> None:
    assert [night.label(n) for n in (100_000, 1_000_000, 10_000_000, 1_234)] == [
        "100k",
        "1m",
        "10m",
        "1234",
    ]


def test_every_task_kind_has_a_stage() -> None:
    names = [
        "plan:gongan.czrk",
        "extract_chunk:gongan.czrk[3]",
        "land:gongan.czrk",
        "extract:bdc.bdc_qlr",
        "stage:bdc.bdc_qlr",
        "report:bdc",
        "plan_night",
        "build_range[12]",
        "publish_night",
        "curate_night",
        "track_night",
        "refresh_reports",
    ]
    assert {night.stage_of(n) for n in names} <= set(night.STAGES)
    assert night.stage_of("build_range[12]") == "curate"
    assert night.stage_of("extract_chunk:gongan.czrk[3]") == "extract"


def test_breakdown_puts_traced_parts_under_their_stage_and_the_rest_by_task() -> None:
    tasks = [
        {"task": "extract:bdc.bdc_qlr", "function_s": 2.0, "traced": {}},
        {
            "task": "stage:bdc.bdc_qlr",
            "function_s": 10.0,
            "traced": {"normalise": 4.0, "gate": 3.0, "merge": 2.0},
        },
        {"task": "build_range[0]", "function_s": 5.0, "traced": {}},
        {"task": "publish_night", "function_s": 6.0, "traced": {}},
        {"task": "track_night", "function_s": 1.0, "traced": {}},
    ]
    got = night.breakdown(tasks)
    assert got == {
        "extract": 2.0,
        "normalise": 4.0,
        "gate": 3.0,
        "merge": 3.0,  # 2 traced + the stage task's untraced second
        "curate": 5.0,
        "publish": 6.0,
        "report": 1.0,
    }
    assert sum(got.values()) == pytest.approx(sum(t["function_s"] for t in tasks))


def test_scale_is_cost_per_million_rows_largest_over_smallest() -> None:
    runs = {
        1_000_000: {"night_s": 100.0, "source_rows": 2_000_000},
        10_000_000: {"night_s": 1_100.0, "source_rows": 20_000_000},
        3_000_000: {"night_s": 1.0, "source_rows": 6_000_000},
    }
    m = night.scale_metric(runs)
    assert m is not None
    assert m.metric == "scale_10m_vs_1m"
    assert (m.ours_s, m.anchor_s, m.ratio) == (55.0, 50.0, 1.1)
    assert m.met()
    assert night.scale_metric({1_000_000: runs[1_000_000]}) is None


def test_airflow_share() -> None:
    assert night.airflow_share(30.0, 120.0) == 0.75


def _run(persons: int, night_s: float, copy_s: float, peaks: list[float]) -> dict[str, object]:
    tasks = [
        {
            "task": f"extract:d.t{i}",
            "function_s": night_s / len(peaks),
            "traced": {},
            "peak_rss_mib": p,
        }
        for i, p in enumerate(peaks)
    ]
    return {
        "persons": persons,
        "source_rows": 2 * persons,
        "night_s": night_s,
        "dept_path_s": night_s,
        "copy_total_s": copy_s,
        "tasks": tasks,
        "airflow": {"default": {"wall_s": night_s * 4}} if persons == 1_000_000 else {},
    }


def test_result_file_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    runs = {
        1_000_000: _run(1_000_000, 60.0, 20.0, [300.0, 900.0]),
        3_000_000: _run(3_000_000, 200.0, 60.0, [310.0, 2_500.0]),
    }
    path = night.write(runs, ["default"])  # type: ignore[arg-type]
    assert path == tmp_path / "night.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    metrics = {m["metric"]: m for m in doc["metrics"]}
    assert set(metrics) == {
        "night_vs_copy_1m",
        "night_vs_copy_3m",
        "scale_3m_vs_1m",
        "peak_rss_mib_3m",
        "airflow_share_1m",
    }
    assert metrics["night_vs_copy_1m"]["ratio"] == 3.0
    assert metrics["peak_rss_mib_3m"]["ratio"] == 2_500.0 and doc["peak_task"] == "extract:d.t1"
    assert metrics["airflow_share_1m"]["ratio"] == 0.75
    assert doc["sizes_run"] == ["1m", "3m"]
    assert doc["night_vs_copy"] == {"1m": 3.0, "3m": 3.333}
    assert doc["airflow_share"] == {"1m:default": 0.75}
    assert set(doc["runs"]) == {"1m", "3m"} and doc["rows"] == 6_000_000


def test_airflow_share_is_taken_inside_the_airflow_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The separate run's function seconds can exceed the DAG runs' wall (one warm interpreter
    in ``dags test``): the share comes from the task spans of the Airflow run itself."""
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    run = _run(1_000_000, 60.0, 20.0, [300.0])
    run["airflow"] = {"default": {"wall_s": 50.0, "share_in_run": 0.3}}  # night_s > wall
    doc = json.loads(night.write({1_000_000: run}, ["default"]).read_text(encoding="utf-8"))
    metrics = {m["metric"]: m for m in doc["metrics"]}
    assert metrics["airflow_share_1m"]["ratio"] == 0.3
    assert metrics["airflow_share_1m"]["ours_s"] == pytest.approx(15.0)
    assert doc["airflow_share"] == {"1m:default": 0.3}


def test_linear_extrapolation_through_the_end_sizes_never_below_the_largest() -> None:
    got = night.linear({100_000: 10.0, 1_000_000: 28.0, 500_000: 99.0}, 10_000_000)
    assert got == pytest.approx(208.0)
    assert night.linear({100_000: 30.0, 1_000_000: 20.0}, 65_000_000) == 20.0
    assert night.linear({1_000_000: 5.0}, 3_000_000) == 15.0


def test_extrapolate_sums_stages_and_takes_each_task_kinds_largest_peak() -> None:
    def run(scale: float) -> dict[str, object]:
        return {
            "stages_s": dict.fromkeys(night.STAGES, 1.0 * scale),
            "tasks": [
                {"task": "build_range[0]", "peak_rss_mib": 100.0 * scale},
                {"task": "build_range[1]", "peak_rss_mib": 150.0 * scale},
                {"task": "publish_night", "peak_rss_mib": 200.0 * scale},
            ],
            "disk_bytes": {"raw": 1_000 * scale},
        }

    got = night.extrapolate({1_000_000: run(1), 2_000_000: run(2)}, 4_000_000)  # type: ignore[dict-item]
    assert got["stages_s"] == dict.fromkeys(night.STAGES, 4.0) and got["night_s"] == 28.0
    assert got["peak_rss_mib"] == {"build_range": 600, "publish_night": 800}
    assert got["disk_bytes"] == {"raw": 4_000} and got["from_sizes"] == ["1m", "2m"]
