"""A whole night at a province's scale: every table of every department, curation, reports.

``make bench ONLY=night`` (``python -m bench --only night [--rows N]``; sizes also from
``DATACLOUD_BENCH_NIGHT_PERSONS``, comma separated, e.g. ``1000000,3000000``). Per size:

1. **Sample databases** (timed apart, not part of the night): ``datacloud.sample.generate``
   for N persons; gongan, scjg and bdc into one PostgreSQL database (``dc_bench_night``,
   tables from sql/sample/<dept>.sql, COPY FROM), gjj and mz into one MariaDB database each
   (``dc_bench_night_<dept>``, the generator's own ``write_url``). All dropped at the end.
2. **The night**, through the task functions the DAGs call, each task in a fresh interpreter
   (as an Airflow task is) whose peak RSS is its ``VmHWM``: per department and table
   ``nightly.extract`` (or ``plan`` → ``extract_chunk`` per range → ``land`` for a chunked
   table) → ``nightly.stage``; ``nightly.report``; then ``curation_night.plan_night`` →
   ``curation_scatter.scatter_night`` → ``build_range`` per key range → ``publish_night``
   (or ``curate_night`` on an incremental plan); ``problems_night.track_night``;
   ``nightly.refresh_reports``. The stage task is split into normalise, gate and merge by
   wrapping those functions in the child (``_TRACE``), nothing edited.
3. **The anchor**, in the same run: ``psql -c "COPY (SELECT * FROM t) TO STDOUT"`` of every
   PostgreSQL source table and ``mariadb --quick -e "SELECT * FROM t"`` of every MariaDB one,
   output to /dev/null.
4. At the smallest size (or with ``airflow=True``): the same night through ``airflow dags
   test`` (every department DAG, then ``curation``; SQLite metadata, migrated untimed) on a
   fresh storage root: ``airflow_share`` = 1 − Σ the tasks' spans in the Airflow logs ÷ the
   DAG runs' wall (both from that one run).

Metrics (bench/results/night.json): ``night_vs_copy`` per size (Σ task-function seconds of
the whole night ÷ Σ COPY seconds; ``dept_path_vs_copy`` the same for extract + stage only),
``scale_<big>_vs_<small>`` (seconds per million source rows at the largest size ÷ at the
smallest), ``peak_rss_mib`` (the largest task's VmHWM at the largest size; per task in
``runs``), ``airflow_share``. The machine's load average is recorded before and after each
size: the machine is shared.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench import postgres as pg
from bench.harness import RESULTS, Metric, timed_ratio, write_result

DS = date(2026, 11, 20)
SEED = 7
PG_DB = "dc_bench_night"
PG_URL = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{PG_DB}"
MARIA_URL = "mysql+pymysql://root@127.0.0.1:3306/dc_bench_night_{dept}?charset=utf8mb4"
ON_POSTGRES = ("gongan", "scjg", "bdc")
ON_MARIADB = ("gjj", "mz")
REPO = Path(__file__).resolve().parent.parent
PYCACHE = Path(tempfile.gettempdir()) / "datacloud-bench-pycache"
SIZES_ENV = "DATACLOUD_BENCH_NIGHT_PERSONS"
STAGES = ("extract", "normalise", "gate", "merge", "curate", "publish", "report")
MIB = 2**20

# --- pure parts (tested in tests/unit/test_bench_night.py) -------------------------------------


def sizes(rows: int | None, env: str | None) -> list[int]:
    """The person counts to run: ``--rows`` wins, then the environment (comma separated, ``_``
    and ``M``/``k`` suffixes allowed), else 1M."""
    if rows:
        return [rows]
    if env and env.strip():
        return sorted({parse_count(p) for p in env.split(",") if p.strip()})
    return [1_000_000]


def parse_count(text: str) -> int:
    t = text.strip().replace("_", "").lower()
    scale = {"m": 1_000_000, "k": 1_000}.get(t[-1:], 1)
    n = int(float(t[:-1]) * scale) if scale > 1 else int(t)
    if n < 1:
        raise ValueError(f"a size must be at least 1 person, got {text!r}")
    return n


def stage_of(task: str) -> str:
    """The per-stage bucket of a task's remaining time (after the traced parts)."""
    kind = task.split(":", 1)[0].split("[", 1)[0]
    return {
        "extract": "extract",
        "plan": "extract",
        "extract_chunk": "extract",
        "land": "extract",
        "stage": "merge",  # the stage task's rest: rejected rows moved, run state, lineage
        "plan_night": "curate",
        "scatter_night": "curate",
        "build_range": "curate",
        "curate_night": "curate",
        "publish_night": "publish",
        "report": "report",
        "track_night": "report",
        "refresh_reports": "report",
    }[kind]


def breakdown(tasks: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds per stage over the night: each task's traced parts (normalise, gate, merge)
    under their stage, the rest of its function time under ``stage_of``."""
    out = dict.fromkeys(STAGES, 0.0)
    for t in tasks:
        traced = t.get("traced", {})
        for stage, secs in traced.items():
            out[stage] += secs
        out[stage_of(t["task"])] += max(0.0, t["function_s"] - sum(traced.values()))
    return {k: round(v, 3) for k, v in out.items()}


def per_million(seconds: float, rows: int) -> float:
    return seconds / (rows / 1_000_000)


def scale_metric(runs: dict[int, dict[str, Any]]) -> Metric | None:
    """Cost per million source rows at the largest size ÷ at the smallest (None: one size)."""
    if len(runs) < 2:
        return None
    lo, hi = min(runs), max(runs)
    a = per_million(runs[lo]["night_s"], runs[lo]["source_rows"])
    b = per_million(runs[hi]["night_s"], runs[hi]["source_rows"])
    return timed_ratio(
        f"scale_{label(hi)}_vs_{label(lo)}",
        b,
        f"seconds per million source rows at {label(lo)} persons",
        a,
        "<= 1.15",
    )


def label(persons: int) -> str:
    if persons % 1_000_000 == 0:
        return f"{persons // 1_000_000}m"
    if persons % 1_000 == 0:
        return f"{persons // 1_000}k"
    return str(persons)


def airflow_share(function_s: float, dags_wall_s: float) -> float:
    """The share of the ``airflow dags test`` night that is not our task functions."""
    return round(1.0 - function_s / dags_wall_s, 4)


def task_spans(log: str) -> dict[str, float]:
    """Seconds of each task inside an ``airflow dags test`` log, from its ``[DAG TEST]
    starting`` line to its ``[DAG TEST] end task`` line (``task_id[map_index]``)."""
    from datetime import datetime as dt

    started: dict[str, float] = {}
    spans: dict[str, float] = {}
    for line in log.splitlines():
        if "[DAG TEST] starting task_id=" in line:
            which = "starting"
        elif "[DAG TEST] end task task_id=" in line:
            which = "end"
        else:
            continue
        at = dt.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp()
        task = line.split("task_id=", 1)[1].split()[0]
        index = line.split("map_index=", 1)[1].split()[0]
        key = task if index == "-1" else f"{task}[{index}]"
        if which == "starting":
            started[key] = at
        elif key in started:
            spans[key] = round(at - started.pop(key), 3)
    return spans


# --- the child: one task function in a fresh interpreter --------------------------------------

_TRACE = {  # (module, attribute) -> stage; wrapped in the child when the attribute exists
    ("datacloud.staging_batches", "normalise_partition"): "normalise",
    ("datacloud.nightly", "normalise_table"): "normalise",
    ("datacloud.quality", "check_profile"): "gate",
    ("datacloud.quality", "check_raw"): "gate",
    ("datacloud.quality", "record"): "gate",
    ("datacloud.staging_batches", "merge_plan"): "merge",
    ("datacloud.nightly", "merge_batches_by_key"): "merge",
    ("datacloud.nightly", "merge_by_key"): "merge",
    ("datacloud.nightly", "staged_deletions"): "merge",
}


def _trace(spent: dict[str, float]) -> None:
    import functools
    import importlib

    for (module, attr), stage in _TRACE.items():
        mod = importlib.import_module(module)
        fn = getattr(mod, attr, None)
        if fn is None:
            continue

        def wrapped(*a: Any, _fn: Any = fn, _stage: str = stage, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[_stage] = spent.get(_stage, 0.0) + time.perf_counter() - t0

        setattr(mod, attr, functools.wraps(fn)(wrapped))


def _call(spec: dict[str, Any]) -> Any:
    from datacloud import curation_night, nightly, problems_night
    from datacloud.config import load_departments
    from datacloud.paths import StorageRoot

    root = StorageRoot.from_env()
    ds = date.fromisoformat(spec["ds"])
    kind, run_id = spec["kind"], spec["run_id"]
    if kind in {"extract", "plan", "extract_chunk", "land", "stage", "report"}:
        dept = nightly.department(spec["dept"])
        if kind == "extract":
            return nightly.extract(root, dept, spec["table"], ds, spec["url"])
        if kind == "plan":
            return nightly.plan(root, dept, spec["table"], ds, spec["url"])
        if kind == "extract_chunk":
            return nightly.extract_chunk(
                root, dept, spec["table"], ds, spec["url"], spec["chunk"], run_id
            )
        if kind == "land":
            return nightly.land(root, dept, spec["table"], ds, run_id, spec["chunks"])
        if kind == "stage":
            return nightly.stage(root, dept, spec["table"], ds, run_id)
        return nightly.report(root, dept, ds)
    depts = load_departments()
    if kind == "plan_night":
        return curation_night.plan_night(root, depts, run_id)
    if kind == "scatter_night":
        from datacloud import curation_scatter

        return curation_scatter.scatter_night(root, depts, spec["plan"])
    if kind == "build_range":
        return curation_night.build_range(root, depts, spec["plan"], spec["index"])
    if kind == "publish_night":
        return curation_night.publish_night(root, depts, ds, run_id, spec["plan"])
    if kind == "curate_night":
        return curation_night.curate_night(root, depts, ds, run_id)
    if kind == "track_night":
        return problems_night.track_night(root, depts, ds, run_id)
    if kind == "refresh_reports":
        return nightly.refresh_reports(root, depts, ds)
    raise ValueError(f"unknown task kind {kind!r}")


def child(spec_json: str) -> None:
    """Run one task (``spec_json``) and print ``RESULT {json}``: its function seconds, the
    traced parts, its answer and the process's peak RSS (VmHWM; ru_maxrss would carry the
    parent's peak across fork + exec)."""
    spec = json.loads(spec_json)
    spent: dict[str, float] = {}
    _trace(spent)
    t0 = time.perf_counter()
    answer = _call(spec)
    function_s = time.perf_counter() - t0
    status = Path("/proc/self/status").read_text().splitlines()
    hwm_kib = int(next(x for x in status if x.startswith("VmHWM:")).split()[1])
    out = {
        "function_s": function_s,
        "traced": spent,
        "peak_rss_mib": round(hwm_kib / 1024, 1),
        "answer": answer,
    }
    print("RESULT " + json.dumps(out, default=str), flush=True)


def _env(root: Path) -> dict[str, str]:
    # bytecode cached outside the venv, as a deployed venv has it compiled (this sandbox sets
    # PYTHONDONTWRITEBYTECODE, which would make every task compile GE and Airflow again)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        PYTHONPYCACHEPREFIX=str(PYCACHE),
        DATACLOUD_ROOT=str(root),
        DATACLOUD_TASK_RETRIES="0",
        GX_ANALYTICS_ENABLED="False",
    )
    env.pop("DATACLOUD_STATE_ROOT", None)
    return env


def run_task(root: Path, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One task in a fresh interpreter: its name, wall (interpreter start and imports
    included), function seconds, traced parts, peak RSS and answer."""
    t0 = time.perf_counter()
    proc = subprocess.run(  # a module, not -c: under -c pyspark (imported by GE) exits
        [sys.executable, "-m", "bench.night", json.dumps(spec, default=str)],
        cwd=REPO,
        env=_env(root),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise RuntimeError(f"task {name} failed (exit {proc.returncode}):\n{tail}")
    out: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    out["traced"] = {k: round(v, 3) for k, v in out["traced"].items()}
    print(
        f"  {name}: {out['function_s']:.2f}s in the function, {wall:.2f}s wall, "
        f"{out['peak_rss_mib']:.0f} MiB",
        flush=True,
    )
    return {
        "task": name,
        "wall_s": round(wall, 3),
        **out,
        "function_s": round(out["function_s"], 3),
    }


# --- the sample databases ---------------------------------------------------------------------


def load_sources(persons: int) -> dict[str, Any]:
    """Generate the sample for ``persons`` and write it to PostgreSQL and MariaDB, in a child
    process: the generator holds the whole sample (about 18 GiB at 10M persons), and a parent
    that kept that memory for the night would leave the tasks less than the machine has."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        return pool.submit(_load_sources, persons).result()


def _load_sources(persons: int) -> dict[str, Any]:
    from datacloud.sample import generate
    from datacloud.sample.ddl import tables
    from datacloud.sample.writer import write_url

    t0 = time.perf_counter()
    sample = generate(persons, SEED)
    generated = time.perf_counter() - t0
    pg.create_database(PG_DB)
    for dept in ON_POSTGRES:
        for tdef in tables(dept):
            pg.copy_in(PG_DB, tdef.statement, tdef.name, sample.tables[dept][tdef.name])
    pg_loaded = time.perf_counter() - t0 - generated
    maria = {d: t for d, t in sample.tables.items() if d in ON_MARIADB}
    for dept in ON_MARIADB:
        _maria_admin(f"DROP DATABASE IF EXISTS dc_bench_night_{dept}")
    write_url(
        type(sample)(tables=maria, ground_truth=sample.ground_truth, manifest=sample.manifest),
        MARIA_URL,
    )
    maria_loaded = time.perf_counter() - t0 - generated - pg_loaded
    counts = sample.manifest["row_counts"]
    return {
        "generate_s": round(generated, 1),
        "postgres_load_s": round(pg_loaded, 1),
        "mariadb_load_s": round(maria_loaded, 1),
        "row_counts": counts,
        "source_rows": sum(n for t in counts.values() for n in t.values()),
    }


def _maria_admin(sql: str) -> None:
    subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-e", sql], check=True)


def drop_sources() -> None:
    pg.drop_database(PG_DB)
    for dept in ON_MARIADB:
        _maria_admin(f"DROP DATABASE IF EXISTS dc_bench_night_{dept}")


def url_of(dept: str) -> str:
    return PG_URL if dept in ON_POSTGRES else MARIA_URL.replace("{dept}", dept)


def copy_anchor(row_counts: dict[str, dict[str, int]]) -> dict[str, float]:
    """Every source table off its server into /dev/null: psql COPY TO STDOUT (PostgreSQL),
    ``mariadb --quick`` batch output (MariaDB); seconds per table."""
    out = {}
    for dept, tabs in row_counts.items():
        for table in tabs:
            if dept in ON_POSTGRES:
                cmd = [
                    "psql",
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    PG_DB,
                    "-c",
                    f"COPY (SELECT * FROM {table}) TO STDOUT",
                ]
            else:
                cmd = [
                    "mariadb",
                    "--quick",
                    "--batch",
                    "--skip-column-names",
                    "-h",
                    "127.0.0.1",
                    "-u",
                    "root",
                    f"dc_bench_night_{dept}",
                    "-e",
                    f"SELECT * FROM {table}",
                ]
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
            out[f"{dept}.{table}"] = round(time.perf_counter() - t0, 3)
    return out


# --- the night --------------------------------------------------------------------------------


def night(root: Path, ds: date = DS, run_id: str = "bench-night") -> list[dict[str, Any]]:
    """The whole night, task by task, each in its own interpreter, in DAG order."""
    from datacloud.config import load_departments

    done: list[dict[str, Any]] = []
    base = {"ds": ds.isoformat(), "run_id": run_id}
    for dept in load_departments():
        url = url_of(dept.code)
        for table in dept.tables:
            t = {**base, "dept": dept.code, "table": table.name, "url": url}
            name = f"{dept.code}.{table.name}"
            if table.chunks > 1:
                plan = run_task(root, f"plan:{name}", {**t, "kind": "plan"})
                done.append(plan)
                for chunk in plan["answer"]:
                    spec = {**t, "kind": "extract_chunk", "chunk": chunk}
                    done.append(run_task(root, f"extract_chunk:{name}[{chunk['index']}]", spec))
                spec = {**t, "kind": "land", "chunks": len(plan["answer"])}
                done.append(run_task(root, f"land:{name}", spec))
            else:
                done.append(run_task(root, f"extract:{name}", {**t, "kind": "extract"}))
            done.append(run_task(root, f"stage:{name}", {**t, "kind": "stage"}))
        done.append(
            run_task(root, f"report:{dept.code}", {**base, "dept": dept.code, "kind": "report"})
        )
    planned = run_task(root, "plan_night", {**base, "kind": "plan_night"})
    done.append(planned)
    plan = planned["answer"]
    if plan["mode"] == "full":
        entry = {k: v for k, v in plan.items() if k != "ranges"}
        done.append(
            run_task(root, "scatter_night", {**base, "kind": "scatter_night", "plan": plan})
        )
        for i in plan["ranges"]:
            spec = {**base, "kind": "build_range", "plan": {**entry, "index": i}, "index": i}
            done.append(run_task(root, f"build_range[{i}]", spec))
        done.append(
            run_task(root, "publish_night", {**base, "kind": "publish_night", "plan": plan})
        )
    else:
        done.append(run_task(root, "curate_night", {**base, "kind": "curate_night"}))
    done.append(run_task(root, "track_night", {**base, "kind": "track_night"}))
    done.append(run_task(root, "refresh_reports", {**base, "kind": "refresh_reports"}))
    for t in done:  # the answers are XCom-sized, but plans carry paths: keep the figures
        t.pop("answer", None)
    return done


# --- the same night through Airflow -----------------------------------------------------------

AIRFLOW_SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    # Airflow 3's `dags test` runs every task inside its one process (no task process, no
    # executor): what is left to cut is the CLI's start-up, the DAG folder's parse and the
    # logging of each task. Plugins and providers load lazily by default already.
    "lean": {
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__CORE__DAG_DISCOVERY_SAFE_MODE": "True",
    },
}


def _airflow_conn(dept: str) -> str:
    if dept in ON_POSTGRES:
        conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres"}
        return json.dumps({**conn, "schema": PG_DB})
    conn = {"conn_type": "mysql", "host": "127.0.0.1", "port": 3306, "login": "root"}
    return json.dumps({**conn, "schema": f"dc_bench_night_{dept}"})


def airflow_night(root_dir: Path, settings: dict[str, str], ds: date = DS) -> dict[str, Any]:
    """Every department DAG then ``curation`` through ``airflow dags test``; wall per run."""
    from datacloud import demo
    from datacloud.paths import StorageRoot

    root = StorageRoot(root_dir)
    depts = demo.departments()
    env = demo.embedded_env(root)
    env.update(_env(root_dir))
    env.update(settings)
    for dept in depts:
        env[f"AIRFLOW_CONN_{dept.connection_id.upper()}"] = _airflow_conn(dept.code)
    ok, migrate_s, log = demo.migrate(env, root)
    if not ok:
        raise RuntimeError(f"airflow db migrate failed, see {log}")
    runs: dict[str, float] = {}
    spans: dict[str, dict[str, float]] = {}
    quiet = settings.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO") != "INFO"
    for dag_id in [f"dept_{d.code}" for d in depts] + ["curation"]:
        outcome = demo.run_dag(dag_id, ds, env, root)
        # above INFO the log has no "DagRun Finished" and no task spans: the exit code judges
        ok = outcome.ok or (quiet and _exited_0(dag_id, ds, env, root))
        print(f"  airflow dags test {dag_id}: {outcome.seconds:.1f}s ok={ok}", flush=True)
        if not ok:
            raise RuntimeError(f"{dag_id} failed, see {outcome.log}")
        runs[dag_id] = round(outcome.seconds, 3)
        spans[dag_id] = task_spans(outcome.log.read_text(encoding="utf-8", errors="replace"))
    return summarise_airflow(runs, spans, migrate_s)


def _exited_0(dag_id: str, ds: date, env: dict[str, str], root: Any) -> bool:
    """Whether the DAG run of ``dag_id`` for ``ds`` succeeded, asked of Airflow itself
    (``airflow dags list-runs``), for a run whose log is too quiet to say."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "dags", "list-runs", dag_id, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
    )
    try:
        runs = json.loads(out.stdout[out.stdout.index("[") :])
    except ValueError:
        return False
    return any(r.get("state") == "success" for r in runs)


def summarise_airflow(
    runs: dict[str, float], spans: dict[str, dict[str, float]], migrate_s: float
) -> dict[str, Any]:
    """The DAG runs' walls, the tasks' own seconds inside them (from the logs) and
    ``share_in_run``: 1 - the tasks' seconds / the walls (Airflow's start-up, parsing,
    metadata database and supervision; the tasks run in the one ``dags test`` process)."""
    wall = round(sum(runs.values()), 3)
    tasks = round(sum(v for s in spans.values() for v in s.values()), 3)
    return {
        "migrate_s": round(migrate_s, 1),
        "dag_runs_s": runs,
        "wall_s": wall,
        "task_spans_s": spans,
        "tasks_s": tasks,
        "share_in_run": airflow_share(tasks, wall) if wall else None,
    }


# --- the benchmark ----------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def one_size(persons: int, with_airflow: bool, settings: list[str]) -> dict[str, Any]:
    print(f"night at {persons:,} persons (load average {load_average()})", flush=True)
    out: dict[str, Any] = {"persons": persons, "load_average_before": load_average()}
    try:
        out["sources"] = load_sources(persons)
        out["source_rows"] = out["sources"]["source_rows"]
        print(f"  sources: {out['sources']}", flush=True)
        copy_s = copy_anchor(out["sources"]["row_counts"])
        with tempfile.TemporaryDirectory(prefix="dc-bench-night-") as tmp:
            root = Path(tmp) / "root"
            started = time.perf_counter()
            tasks = night(root)
            out["tasks_wall_s"] = round(time.perf_counter() - started, 3)
            out["disk_bytes"] = _disk(root)
            shutil.rmtree(root)
            copy_again = copy_anchor(out["sources"]["row_counts"])
            # the anchor before and after the night: the faster of the two per table
            out["copy_s"] = {k: min(v, copy_again[k]) for k, v in copy_s.items()}
            if with_airflow:
                out["airflow"] = {}
                for name in settings:
                    af_root = Path(tmp) / f"airflow-{name}"
                    try:
                        out["airflow"][name] = airflow_night(af_root, AIRFLOW_SETTINGS[name])
                    except RuntimeError as e:  # the night's own figures stand without it
                        out.setdefault("airflow_failed", {})[name] = str(e)
                    shutil.rmtree(af_root, ignore_errors=True)
    finally:
        drop_sources()
    out["tasks"] = tasks
    out["copy_total_s"] = round(sum(out["copy_s"].values()), 3)
    out["night_s"] = round(sum(t["function_s"] for t in tasks), 3)
    dept_kinds = {"extract", "plan", "extract_chunk", "land", "stage"}
    out["dept_path_s"] = round(
        sum(t["function_s"] for t in tasks if t["task"].split(":")[0] in dept_kinds), 3
    )
    out["stages_s"] = breakdown(tasks)
    out["peak_rss_mib"] = {t["task"]: t["peak_rss_mib"] for t in tasks}
    out["load_average_after"] = load_average()
    return out


def _disk(root: Path) -> dict[str, int]:
    """Bytes under each top folder of the storage root after the night."""
    out = {}
    for top in sorted(p for p in root.iterdir() if p.is_dir()):
        out[top.name] = sum(f.stat().st_size for f in top.rglob("*") if f.is_file())
    return out


def run(rows: int | None = None, airflow: bool | None = None) -> Path:
    wanted = sizes(rows, os.environ.get(SIZES_ENV))
    settings = [
        s for s in os.environ.get("DATACLOUD_BENCH_NIGHT_AIRFLOW", "default").split(",") if s
    ]
    # airflow_share is asked at 1M: there when 1M runs, else at the smallest size
    af_size = 1_000_000 if 1_000_000 in wanted else min(wanted)
    runs: dict[int, dict[str, Any]] = {}
    path = RESULTS / "night.json"
    for persons in wanted:
        af = airflow if airflow is not None else persons == af_size
        runs[persons] = one_size(persons, af, settings)
        path = write(runs, settings)  # after each size: a later size cut short keeps these
    return path


def write(runs: dict[int, dict[str, Any]], settings: list[str]) -> Path:
    metrics: list[Metric] = []
    for persons, r in runs.items():
        metrics.append(
            timed_ratio(
                f"night_vs_copy_{label(persons)}",
                r["night_s"],
                "psql COPY (SELECT * FROM t) TO STDOUT / mariadb --quick of every source table "
                "into /dev/null",
                r["copy_total_s"],
                "<= 3.0",
            )
        )
    scale = scale_metric(runs)
    if scale is not None:
        metrics.append(scale)
    big = runs[max(runs)]
    worst = max(big["tasks"], key=lambda t: t["peak_rss_mib"])
    peak = worst["peak_rss_mib"]
    metrics.append(
        Metric(f"peak_rss_mib_{label(max(runs))}", peak, "4 GiB budget", 4096.0, peak, "<= 4096")
    )
    shares = {}
    for persons, r in runs.items():
        for name, af in r.get("airflow", {}).items():
            # Airflow's own share inside the same run: the DAG runs' wall less the tasks'
            # spans in their logs (a separate run's function seconds differ by more than the
            # noise: a task in `dags test` shares one warm interpreter with the others)
            share = af.get("share_in_run")
            if share is None:
                share = airflow_share(r["night_s"], af["wall_s"])
            shares[f"{label(persons)}:{name}"] = share
            if name == "default":
                metrics.append(
                    Metric(
                        f"airflow_share_{label(persons)}",
                        round(af["wall_s"] * share, 3),
                        "airflow dags test of every DAG of the night (wall)",
                        af["wall_s"],
                        shares[f"{label(persons)}:{name}"],
                        "<= 1.0",
                    )
                )
    return write_result(
        "night",
        max(r["source_rows"] for r in runs.values()),
        metrics,
        sizes_run=[label(p) for p in runs],
        night_vs_copy={
            label(p): round(r["night_s"] / r["copy_total_s"], 3) for p, r in runs.items()
        },
        dept_path_vs_copy={
            label(p): round(r["dept_path_s"] / r["copy_total_s"], 3) for p, r in runs.items()
        },
        airflow_share=shares,
        airflow_settings_tried={k: AIRFLOW_SETTINGS[k] for k in settings},
        peak_task=worst["task"],
        runs={label(p): r for p, r in runs.items()},
        note=(
            "night_s: the sum of the task functions' own seconds (in each child, imports and "
            "interpreter start excluded; tasks_wall_s includes them), run one after the other. "
            "copy_s: per table the faster of the COPY before and after the night. "
            "airflow_share: 1 - the tasks' own spans in the airflow dags test logs / the "
            "wall of airflow dags test of every DAG on the same sources (a fresh storage "
            "root). peak_rss_mib: VmHWM of each task's process. "
            "Shared 2-core machine: see load_average_before/after."
        ),
    )


def linear(points: dict[int, float], at: int) -> float:
    """The straight line through the smallest and largest measured sizes, at ``at``; never
    below the largest size's figure (a noisy small run must not make a cost shrink)."""
    lo, hi = min(points), max(points)
    if lo == hi:
        return points[lo] * at / lo
    slope = (points[hi] - points[lo]) / (hi - lo)
    return max(points[hi], points[hi] + slope * (at - hi))


def extrapolate(runs: dict[int, dict[str, Any]], at: int) -> dict[str, Any]:
    """Per stage seconds, per task kind peak RSS (MiB) and disk (bytes) at ``at`` persons,
    on the line through the smallest and largest sizes run (a guess beyond them, named so)."""

    def kind(task: str) -> str:
        return task.split("[", 1)[0]

    stages = {s: linear({p: r["stages_s"][s] for p, r in runs.items()}, at) for s in STAGES}
    tasks = {kind(t["task"]) for r in runs.values() for t in r["tasks"]}
    rss = {
        k: linear(
            {
                p: max(t["peak_rss_mib"] for t in r["tasks"] if kind(t["task"]) == k)
                for p, r in runs.items()
            },
            at,
        )
        for k in sorted(tasks)
    }
    disk = {
        d: linear({p: r["disk_bytes"].get(d, 0) for p, r in runs.items()}, at)
        for d in sorted({d for r in runs.values() for d in r["disk_bytes"]})
    }
    return {
        "persons": at,
        "from_sizes": [label(p) for p in sorted(runs)],
        "stages_s": {k: round(v, 1) for k, v in stages.items()},
        "night_s": round(sum(stages.values()), 1),
        "peak_rss_mib": {k: round(v) for k, v in rss.items()},
        "disk_bytes": {k: round(v) for k, v in disk.items()},
    }


def extrapolate_file(at: int, path: Path | None = None) -> dict[str, Any]:
    """``extrapolate`` on the runs recorded in bench/results/night.json."""
    doc = json.loads((path or RESULTS / "night.json").read_text(encoding="utf-8"))
    return extrapolate({r["persons"]: r for r in doc["runs"].values()}, at)


if __name__ == "__main__":
    if sys.argv[1] == "extrapolate":  # python -m bench.night extrapolate 65M
        print(json.dumps(extrapolate_file(parse_count(sys.argv[2])), indent=2))
    else:  # one task, in a child (run_task)
        child(sys.argv[1])
