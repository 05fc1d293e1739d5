"""Curation: golden records (一人一档, 一企一档) and relation tables from the staged tables.

Survivorship per field (一数一源, ``dags/curation.yaml``): the authority departments of a field
win, in order, where they have a value; otherwise the most recently updated non-null value
wins. Each golden person field carries its source department and as-of date.

Incremental: the staged tables record their row changes (Delta change data feed). A night
reads the changes since the staged versions the last curation consumed (``curated/_curation.json``),
recomputes only the keys they touch from every source, and publishes them in one Delta commit
per curated table (a sorted rewrite or a merge, see ``delta.publish``). The first night,
``full=True``, a survivorship change or a staged table without a change feed rebuild
everything (the same code, every key touched).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datacloud import delta
from datacloud.config import Department
from datacloud.curation_config import PERSON_FIELDS, CurationConfig, load_curation_config
from datacloud.delta import open_table, read_loaded
from datacloud.paths import StorageRoot
from datacloud.quality import QualityGateError
from datacloud.storage import DataPath

log = logging.getLogger(__name__)

KEY = "_key"  # the merge key of every curated table but person (its key is id_number)
MARRIED, DIVORCED = "20", "40"  # GB/T 2261.2 marital status
REGISTRATION_STATUS = {"结婚": MARRIED, "离婚": DIVORCED}
ENTERPRISE_COLUMNS = [
    "credit_code",
    "reg_number",
    "org_code",
    "name",
    "enterprise_type",
    "status",
    "legal_rep_id_number",
    "legal_rep_name",
    "registered_capital",
    "established_date",
    "address",
]
PROPERTY_COLUMNS = [
    "certificate_no",
    "owner_id_number",
    "owner_name",
    "unit_no",
    "location",
    "floor_area_m2",
    "registered_date",
    "status",
]
FUND_COLUMNS = [
    "account_no",
    "id_number",
    "employer_name",
    "employer_credit_code",
    "opened_date",
    "status",
    "monthly_contribution",
]
MARRIAGE_COLUMNS = [
    "registration_id",
    "registration_type",
    "husband_id_number",
    "wife_id_number",
    "registered_date",
    "office",
]
ROLE_COLUMNS = [
    "credit_code",
    "reg_number",
    "id_number",
    "name",
    "role",
    "subscribed_capital",
    "share_ratio",
]


@dataclass(frozen=True)
class Relation:
    kind: str
    columns: list[str]
    key: list[str]  # identifies a row; joined into _key
    sort_by: list[str]  # file order for lookups


RELATIONS = {
    "property_right": Relation(
        "property_right",
        PROPERTY_COLUMNS,
        ["certificate_no", "owner_id_number"],
        ["owner_id_number", "certificate_no"],
    ),
    "housing_fund_account": Relation(
        "housing_fund_account", FUND_COLUMNS, ["account_no"], ["id_number", "account_no"]
    ),
    "marriage": Relation(
        "marriage",
        MARRIAGE_COLUMNS,
        ["registration_id"],
        ["husband_id_number", "wife_id_number", "registered_date"],
    ),
}
ROLE_KEY = ["id_number", "credit_code", "reg_number", "role"]
# curated table -> (merge key, sort order)
LAYOUT: dict[str, tuple[str, list[str]]] = {
    "person": ("id_number", ["id_number"]),
    "enterprise": (KEY, ["credit_code", "reg_number"]),
    **{n: (KEY, r.sort_by) for n, r in RELATIONS.items()},
    "enterprise_role": (KEY, ["id_number", "credit_code", "role"]),
}


# --- reading staged tables ------------------------------------------------------------------


def _stack(
    root: StorageRoot,
    depts: list[Department],
    kinds: set[str],
    columns: list[str],
    *,
    versions: Mapping[str, int] | None = None,
    where: tuple[list[str], pa.Array] | None = None,
) -> pa.Table | None:
    """Rows of every staged table of the given kinds, with their source department and as_of.

    ``versions`` pins each staged table (``"<dept>/<table>"``) to a version; ``where`` keeps
    the rows whose value in any of the given columns is in the given set.
    """
    parts = []
    for dept in depts:
        for spec in dept.tables:
            if spec.kind not in kinds:
                continue
            path = root.staged(dept.code, spec.name)
            pinned = (versions or {}).get(f"{dept.code}/{spec.name}")
            if versions is not None and pinned is None:
                continue
            dt = open_table(path, pinned)
            if dt is None:
                continue
            present = set(dt.schema().to_arrow().names)
            wanted = [c for c in (*columns, "_source_updated_at", "_ds") if c in present]
            if where is None:
                t = read_loaded(dt, wanted)
            else:
                t = delta.read_where(dt, wanted, where[0], pc.cast(where[1], pa.string()))
            n = t.num_rows
            cols_out: dict[str, Any] = {}
            for c in columns:
                cols_out[c] = t[c] if c in t.column_names else pa.nulls(n)
            as_of = (
                pc.cast(t["_source_updated_at"], pa.date32())
                if "_source_updated_at" in t.column_names
                else t["_ds"]
            )
            cols_out["source"] = pa.array([dept.code] * n, pa.string())
            cols_out["as_of"] = pc.coalesce(as_of, t["_ds"])
            parts.append(pa.table(cols_out))
    if not parts:
        return None
    out = pa.concat_tables(parts, promote_options="permissive")
    untyped = [f.with_type(pa.string()) if f.type == pa.null() else f for f in out.schema]
    return out.cast(pa.schema(untyped))


# --- survivorship (pure) --------------------------------------------------------------------


def _winners(
    group: np.ndarray, as_of: pa.Array, source: pa.Array, sources: list[str]
) -> tuple[np.ndarray, np.ndarray, Callable[[np.ndarray, list[str]], np.ndarray]]:
    """Order rows by (group, as_of, source); returns the order, group starts and a picker.

    ``pick(valid, authority)`` gives per group the row (an index into the input) that wins:
    the highest authority rank among rows with ``valid`` true, then the latest as_of, then
    the later source in ``sources``; -1 where no row of the group is valid.
    """
    src = pc.index_in(source, value_set=pa.array(sources, pa.string())).to_numpy(
        zero_copy_only=False
    )
    days = pc.fill_null(pc.cast(as_of, pa.int32()), -(2**20)).to_numpy().astype(np.int64)
    days -= days.min(initial=0)
    span = int(days.max(initial=0)) + 1
    composite = (group.astype(np.int64) * span + days) * len(sources) + src
    order = np.argsort(composite, kind="stable")
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.array([], np.int64)
    n = len(order)
    src_sorted = src[order]

    def pick(valid: np.ndarray, authority: list[str]) -> np.ndarray:
        if n == 0:
            return np.array([], np.int64)
        rank_of = np.zeros(len(sources), np.int64)
        for i, code in enumerate(authority):
            if code in sources:
                rank_of[sources.index(code)] = len(authority) - i
        score = np.where(valid[order], (rank_of[src_sorted] + 1) * n + np.arange(n), -1)
        best = np.maximum.reduceat(score, starts)
        return np.where(best >= 0, order[best % n], -1)

    return order, starts, pick


def _place(idx: np.ndarray) -> pa.Array:
    return pa.array(idx, pa.int64(), mask=idx < 0)


def survive_person(
    keys: pa.Array,
    candidates: pa.Table,
    rules: dict[str, list[str]],
    sources: list[str],
) -> pa.Table:
    """Golden person records for ``keys`` (sorted unique ID numbers) from candidate rows.

    ``candidates``: ``id_number``, one column per golden field, ``source``, ``as_of``.
    ``rules``: field -> authority departments in priority order ([] = latest non-null).
    Returns ``id_number`` and per field ``<field>``, ``<field>_source``, ``<field>_as_of``.
    """
    pos = pc.index_in(candidates["id_number"], value_set=keys)
    candidates = candidates.filter(pc.is_valid(pos))
    group = pc.drop_null(pos).to_numpy().astype(np.int64)
    order, starts, pick = _winners(group, candidates["as_of"], candidates["source"], sources)
    group_key = group[order[starts]] if len(order) else np.array([], np.int64)
    out: dict[str, Any] = {"id_number": keys}
    for name, authority in rules.items():
        valid = pc.is_valid(candidates[name]).to_numpy(zero_copy_only=False)
        winner = np.full(len(keys), -1, np.int64)
        winner[group_key] = pick(valid, authority)
        take = _place(winner)
        out[name] = candidates[name].take(take)
        out[f"{name}_source"] = candidates["source"].take(take)
        out[f"{name}_as_of"] = candidates["as_of"].take(take)
    return pa.table(out)


def first_per_key(rows: pa.Table, key: str, authority: list[str], sources: list[str]) -> pa.Table:
    """The surviving row per ``key``: authority departments first, then the latest as_of."""
    keys = pc.unique(rows[key]).sort()
    group = pc.index_in(rows[key], value_set=keys).to_numpy().astype(np.int64)
    _, _, pick = _winners(group, rows["as_of"], rows["source"], sources)
    winners = pick(np.ones(rows.num_rows, bool), authority)
    return rows.take(pa.array(winners, pa.int64()))


def _joined_key(rows: pa.Table, columns: list[str], prefix: str = "") -> pa.Array:
    parts = [pc.fill_null(pc.cast(rows[c], pa.string()), "") for c in columns]
    return (
        pc.binary_join_element_wise(*parts, "|")
        if len(parts) > 1
        else pc.cast(parts[0], pa.string())
    )


def enterprise_key(rows: pa.Table) -> pa.Array:
    """Credit code, or ``REG:<registration number>`` for a legacy record without one."""
    return pc.coalesce(
        rows["credit_code"], pc.binary_join_element_wise("REG:", rows["reg_number"], "")
    )


def marital_candidates(registrations: pa.Table) -> pa.Table:
    """Two rows per marriage registration (husband, wife): ``marital_status`` and its date.

    结婚 → ``20`` married, 离婚 → ``40`` divorced (GB/T 2261.2); as_of is the registration date,
    so the latest registration of a person wins.
    """
    kinds = pa.array(list(REGISTRATION_STATUS), pa.string())
    codes = pa.array(list(REGISTRATION_STATUS.values()), pa.string())
    status = codes.take(pc.index_in(registrations["registration_type"], value_set=kinds))
    as_of = pc.coalesce(registrations["registered_date"], registrations["as_of"])
    parts = [
        pa.table(
            {
                "id_number": registrations[col],
                "marital_status": status,
                "source": registrations["source"],
                "as_of": as_of,
            }
        )
        for col in ("husband_id_number", "wife_id_number")
    ]
    return pa.concat_tables(parts)


# --- building the curated tables ------------------------------------------------------------


@dataclass
class Night:
    """What one curation run reads: pinned staged versions, and the keys touched (None = all)."""

    root: StorageRoot
    depts: list[Department]
    config: CurationConfig
    versions: dict[str, int]
    touched: dict[str, pa.Array | None] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        return [d.code for d in self.depts]

    def stack(
        self, kinds: set[str], columns: list[str], table: str, key_cols: list[str] | None = None
    ) -> pa.Table | None:
        """Staged rows at the pinned versions; only the touched keys' when ``key_cols`` hold them."""
        keys = self.touched.get(table)
        where = None if keys is None or key_cols is None else (key_cols, keys)
        return _stack(self.root, self.depts, kinds, columns, versions=self.versions, where=where)


def person_records(night: Night) -> tuple[pa.Table, pa.Array] | None:
    """curated/person rows for the touched ID numbers of the household register, and the
    touched ID numbers no longer in it (to delete)."""
    rules = night.config.person_rules(night.depts)
    fields = [f for f in PERSON_FIELDS if f != "marital_status"]
    # the household register's rows are the register and candidates both: read them once
    register = night.stack({"person"}, ["id_number", *fields], "person", ["id_number"])
    if register is None:
        return None
    keys = pc.unique(register["id_number"].drop_null()).sort()
    funds = night.stack({"housing_fund_account"}, ["id_number", *fields], "person", ["id_number"])
    candidates = register if funds is None else _concat(register, funds)
    regs = night.stack(
        {"marriage"},
        ["husband_id_number", "wife_id_number", "registration_type", "registered_date"],
        "person",
        ["husband_id_number", "wife_id_number"],
    )
    if regs is not None and regs.num_rows:
        marital = marital_candidates(regs)
        candidates = pa.concat_tables([candidates, marital], promote_options="permissive")
    else:
        candidates = candidates.append_column(
            "marital_status", pa.nulls(candidates.num_rows, pa.string())
        )
    golden = survive_person(keys, candidates, rules, night.sources)
    return golden, _gone(night.touched.get("person"), keys)


def _concat(a: pa.Table, b: pa.Table) -> pa.Table:
    """Two stacks of the same columns; a column only one of them holds (the other's is all
    null) takes the holder's type."""
    fields = []
    for fa, fb in zip(a.schema, b.schema, strict=True):
        fields.append(fb if a[fa.name].null_count == a.num_rows else fa)
    schema = pa.schema(fields)
    return pa.concat_tables([a.cast(schema), b.cast(schema)])


def _gone(touched: pa.Array | None, present: pa.Array) -> pa.Array:
    if touched is None:
        return pa.array([], pa.string())
    return touched.filter(pc.invert(pc.is_in(touched, value_set=present)))


def _with_key(rows: pa.Table, key: pa.Array) -> pa.Table:
    return rows.append_column(KEY, key).filter(pc.is_valid(key))


def enterprise_records(night: Night) -> tuple[pa.Table, pa.Array] | None:
    """curated/enterprise: one row per credit code; legacy numbers kept as their own rows."""
    rows = night.stack({"enterprise"}, ENTERPRISE_COLUMNS, "enterprise")
    if rows is None:
        return None
    rows = _with_key(rows, enterprise_key(rows))
    touched = night.touched.get("enterprise")
    if touched is not None:
        rows = rows.filter(pc.is_in(rows[KEY], value_set=touched))
    out = first_per_key(rows, KEY, night.config.enterprise_rule(night.depts), night.sources)
    return out, _gone(touched, out[KEY])


def relation(night: Night, name: str) -> tuple[pa.Table, pa.Array] | None:
    spec = RELATIONS[name]
    rows = night.stack({spec.kind}, spec.columns, name)
    if rows is None:
        return None
    rows = _with_key(rows, _joined_key(rows, spec.key))
    touched = night.touched.get(name)
    if touched is not None:
        rows = rows.filter(pc.is_in(rows[KEY], value_set=touched))
    out = first_per_key(rows, KEY, [], night.sources)
    return out, _gone(touched, out[KEY])


def enterprise_roles(night: Night) -> tuple[pa.Table, pa.Array] | None:
    """curated/enterprise_role: shareholders, and legal representatives from the enterprise records."""
    holders = night.stack({"enterprise_role"}, ROLE_COLUMNS, "enterprise_role")
    ents = night.stack({"enterprise"}, ENTERPRISE_COLUMNS, "enterprise_role")
    parts = [] if holders is None else [holders]
    if ents is not None:
        ents = ents.filter(pc.is_valid(ents["legal_rep_id_number"]))
        parts.append(legal_representatives(ents, holders.schema if holders is not None else None))
    if not parts:
        return None
    rows = pa.concat_tables(parts, promote_options="permissive")
    rows = _with_key(rows, _joined_key(rows, ROLE_KEY))
    touched = night.touched.get("enterprise_role")
    if touched is not None:
        rows = rows.filter(pc.is_in(rows[KEY], value_set=touched))
    authority = night.config.enterprise_rule(night.depts)
    out = first_per_key(rows, KEY, authority, night.sources)
    return out, _gone(touched, out[KEY])


def legal_representatives(ents: pa.Table, holders: pa.Schema | None) -> pa.Table:
    """Enterprise records as ``legal_representative`` role rows (columns of the role table)."""
    n = ents.num_rows

    def nulls(c: str) -> pa.Array:
        return pa.nulls(n, holders.field(c).type if holders is not None else pa.string())

    return pa.table(
        {
            "credit_code": ents["credit_code"],
            "reg_number": ents["reg_number"],
            "id_number": ents["legal_rep_id_number"],
            "name": ents["legal_rep_name"],
            "role": pa.array(["legal_representative"] * n, pa.string()),
            "subscribed_capital": nulls("subscribed_capital"),
            "share_ratio": nulls("share_ratio"),
            "source": ents["source"],
            "as_of": ents["as_of"],
        }
    )


BUILDERS: dict[str, Callable[[Night], tuple[pa.Table, pa.Array] | None]] = {
    "person": person_records,
    "enterprise": enterprise_records,
    "property_right": lambda n: relation(n, "property_right"),
    "housing_fund_account": lambda n: relation(n, "housing_fund_account"),
    "marriage": lambda n: relation(n, "marriage"),
    "enterprise_role": enterprise_roles,
}


# --- touched keys ---------------------------------------------------------------------------


def _touched(night: Night, changes: dict[str, pa.Table]) -> dict[str, pa.Array]:
    """Curated table -> the keys the staged changes touch (old and new images, deletions)."""

    def of(kind: str, fn: Callable[[pa.Table], pa.Array]) -> list[pa.Array]:
        out = []
        for d in night.depts:
            for t in d.tables:
                rows = changes.get(f"{d.code}/{t.name}")
                if t.kind == kind and rows is not None and rows.num_rows:
                    out.append(pc.cast(fn(_fill(rows, d, t.name)), pa.string()))
        return out

    def ids(*cols: str) -> Callable[[pa.Table], pa.Array]:
        return lambda r: pa.chunked_array([r[c] for c in cols if c in r.column_names])

    def union(arrays: list[pa.Array]) -> pa.Array:
        if not arrays:
            return pa.array([], pa.string())
        flat = pa.chunked_array(arrays, pa.string()).combine_chunks()
        return pc.unique(flat.drop_null())

    def rel(name: str) -> Callable[[pa.Table], pa.Array]:
        return lambda r: _joined_key(r, RELATIONS[name].key)

    def roles_of_enterprises(r: pa.Table) -> pa.Array:
        r = r.append_column("source", pa.nulls(r.num_rows, pa.string()))
        r = r.append_column("as_of", pa.nulls(r.num_rows, pa.date32()))
        return _joined_key(legal_representatives(r, None), ROLE_KEY)

    return {
        "person": union(
            of("person", ids("id_number"))
            + of("housing_fund_account", ids("id_number"))
            + of("marriage", ids("husband_id_number", "wife_id_number"))
        ),
        "enterprise": union(of("enterprise", enterprise_key)),
        **{n: union(of(RELATIONS[n].kind, rel(n))) for n in RELATIONS},
        "enterprise_role": union(
            of("enterprise_role", lambda r: _joined_key(r, ROLE_KEY))
            + of("enterprise", roles_of_enterprises)
        ),
    }


_CHANGE_COLUMNS = {
    "person": ["id_number"],
    "housing_fund_account": ["id_number", "account_no"],
    "marriage": ["husband_id_number", "wife_id_number", "registration_id"],
    "enterprise": ["credit_code", "reg_number", "legal_rep_id_number", "legal_rep_name"],
    "enterprise_role": ["credit_code", "reg_number", "id_number", "role"],
    "property_right": ["certificate_no", "owner_id_number"],
}


def _fill(rows: pa.Table, dept: Department, table: str) -> pa.Table:
    """Change rows with every key column the kind needs (absent ones as nulls)."""
    kind = dept.table(table).kind
    for c in _CHANGE_COLUMNS[kind]:
        if c not in rows.column_names:
            rows = rows.append_column(c, pa.nulls(rows.num_rows, pa.string()))
    return rows


# --- the state between nights ---------------------------------------------------------------


def state_path(root: StorageRoot) -> Path:
    return root.root / "curated" / "_curation.json"


def read_state(root: StorageRoot) -> dict[str, Any] | None:
    path = state_path(root)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_state(root: StorageRoot, state: dict[str, Any]) -> None:
    """Replace the state file atomically (write, fsync, rename)."""
    path = state_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def pin_versions(root: StorageRoot, depts: list[Department]) -> dict[str, int]:
    """The current version of every staged table: everything tonight reads is at these."""
    out = {}
    for d in depts:
        for t in d.tables:
            dt = open_table(root.staged(d.code, t.name))
            if dt is not None:
                out[f"{d.code}/{t.name}"] = dt.version()
    return out


def read_changes(
    root: StorageRoot, depts: list[Department], since: dict[str, int], upto: dict[str, int]
) -> dict[str, pa.Table] | None:
    """Staged row changes since the last curation, per staged table; None when some table
    cannot tell (no change feed at that version, or its history was vacuumed)."""
    out = {}
    for d in depts:
        for t in d.tables:
            name = f"{d.code}/{t.name}"
            if name not in upto:
                continue
            path = root.staged(d.code, t.name)
            after = since.get(name, -1)
            if after > upto[name] or not delta.has_cdf(path, max(after, 0)):
                log.info("staged %s: no change feed from version %d; full rebuild", name, after)
                return None
            present = set(delta.load(path).schema().to_arrow().names)
            cols = [c for c in _CHANGE_COLUMNS[t.kind] if c in present]
            try:
                out[name] = delta.changes(path, after, upto[name], cols)
            except Exception as e:  # a vacuumed change feed: rebuild in full
                log.info("staged %s: change feed unreadable (%s); full rebuild", name, e)
                return None
    return out


# --- the entry point ------------------------------------------------------------------------

Check = Callable[[str, pa.Table], None]


def curate_all(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    run_id: str,
    *,
    full: bool = False,
    config: CurationConfig | None = None,
    check: Check | None = None,
) -> dict[str, Any]:
    """Build, check and publish every curated table: only touched keys, unless ``full``.

    Each curated table changes by one Delta merge commit (none when nothing changed); the
    staged versions consumed are written to ``curated/_curation.json`` after all publishes,
    so a crash anywhere leaves the next run to redo the same keys.
    """
    config = config or load_curation_config()
    fingerprint = config.fingerprint(depts)
    versions = pin_versions(root, depts)
    state = read_state(root)
    changes = None
    if not full and state is not None and state.get("fingerprint") == fingerprint:
        changes = read_changes(root, depts, state.get("staged", {}), versions)
    night = Night(root, depts, config, versions)
    incremental = changes is not None
    if changes is not None:
        night.touched = dict(_touched(night, changes))
    meta = {
        "datacloud.staged": json.dumps(versions, sort_keys=True),
        "datacloud.full": "false" if incremental else "true",
    }
    published: dict[str, Any] = {}
    gated: dict[str, str] = {}
    for name, build in BUILDERS.items():
        key, sort_by = LAYOUT[name]
        night_for_table = night
        if incremental and _layout_changed(root.curated(name), name, night):
            night_for_table = Night(root, depts, config, versions)  # this table in full
        built = build(night_for_table)  # 1. build
        if built is None:
            log.warning("curated/%s: no staged source tables yet; not published", name)
            continue
        rows, gone = built
        if night_for_table.touched.get(name) is not None and _columns_differ(
            root.curated(name), rows
        ):  # tonight's build has another layout: only a full build may replace the table
            night_for_table = Night(root, depts, config, versions)
            rows, gone = build(night_for_table) or (rows, gone)
        if check is not None:  # 2. check (the curated quality gate)
            try:
                check(name, rows)
            except QualityGateError as e:  # not published; the other tables go on
                log.error("curated/%s: not published: %s", name, e)
                gated[name] = str(e)
                continue
        table_full = night_for_table.touched.get(name) is None
        if table_full:
            gone = _keys_not_in(root.curated(name), key, rows[key])
        _crash_point(f"before:{name}")
        result = delta.publish(  # 3. publish
            root.curated(name),
            rows,
            key,
            gone,
            sort_by,
            run_id,
            ds.isoformat(),
            meta,
            full=table_full,
            deletion_vectors=config.publishing.deletion_vectors,
        )
        _crash_point(f"after:{name}")
        upkeep = delta.maintain(
            root.curated(name),
            sort_by[0],
            config.publishing.retention_days,
            config.publishing.compact_when_files_over,
            run_id,
            ds.isoformat(),
        )
        published[name] = {
            "rows_built": rows.num_rows,
            "inserted": result.inserted,
            "updated": result.updated,
            "deleted": result.deleted,
            "version": result.version,
            "full": table_full,
            "path": str(root.curated(name)),
            **upkeep,
        }
        log.info(
            "curated/%s: %s, %d rows built; v%d (+%d ~%d -%d)",
            name,
            "full" if table_full else "incremental",
            rows.num_rows,
            result.version,
            result.inserted,
            result.updated,
            result.deleted,
        )
    if gated:  # keep the state: the next run redoes tonight's keys once the data is fixed
        raise QualityGateError(
            "curated tables not published (quality gate): "
            + "; ".join(f"{name}: {why}" for name, why in gated.items())
        )
    # the consistency findings (比对), on the same pinned staged versions as the golden records
    from datacloud import consistency

    findings = consistency.publish(root, depts, ds, run_id, versions=versions)
    published["consistency"] = findings
    _crash_point("state")
    write_state(root, {"staged": versions, "fingerprint": fingerprint, "ds": ds.isoformat()})
    return published


def _crash_point(point: str) -> None:
    """Die as ``kill -9`` would at a named point (tests/integration/test_publish_crash.py)."""
    if os.environ.get("DATACLOUD_CURATE_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _layout_changed(path: DataPath, name: str, night: Night) -> bool:
    """The published table lacks a column tonight's build has (or is missing): rebuild it."""
    dt = open_table(path)
    if dt is None:
        return True
    have = set(dt.schema().to_arrow().names)
    return LAYOUT[name][0] not in have or (name == "person" and "marital_status" not in have)


def _columns_differ(path: DataPath, rows: pa.Table) -> bool:
    """Whether the published table has other columns than ``rows`` (and its row hash)."""
    dt = open_table(path)
    return dt is not None and dt.schema().to_arrow().names != [*rows.column_names, delta.ROW_HASH]


def _keys_not_in(path: DataPath, key: str, keys: pa.Array) -> pa.Array:
    """Published keys absent from a full build (to delete)."""
    dt = open_table(path)
    if dt is None or key not in dt.schema().to_arrow().names:
        return pa.array([], pa.string())
    have = read_loaded(dt, [key])[key]
    return pc.drop_null(have.filter(pc.invert(pc.is_in(have, value_set=keys)))).combine_chunks()


# the curated tables a link of a curated suite resolves against, and the column it reads
_LINK_TARGETS = {"person": "id_number", "enterprise": "credit_code"}


def quality_gate(root: StorageRoot, ds: date) -> Check:
    """The curated quality gate: each table's GE suite (expectations/curated_<table>.json) on
    the rows about to be published; a failed critical expectation keeps the table unpublished.

    Links (owners, spouses, legal representatives, roles) resolve against the curated person
    and enterprise tables as published so far tonight (person and enterprise go first).
    """
    from datacloud import quality

    keys: dict[str, tuple[int, pa.Table]] = {}  # link target -> (its version, its key column)

    def link_keys(table: str) -> pa.Table | None:
        """The key column of a link target, read once per published version of it."""
        dt = open_table(root.curated(table))
        if dt is None:
            return None
        version = dt.version()
        if table not in keys or keys[table][0] != version:
            column = [_LINK_TARGETS[table]]
            keys[table] = (version, delta.read_table(root.curated(table), column, version))
        return keys[table][1]

    def check(name: str, rows: pa.Table) -> None:
        related = {}
        for table in _LINK_TARGETS:
            found = link_keys(table) if table != name else None
            if found is not None:
                related[table] = found
        result = quality.check_curated(root, name, rows, ds, related)
        if not result.passed:
            raise QualityGateError(result.message())

    return check


def curate_night(ds: date, run_id: str, *, full: bool = False) -> dict[str, Any]:
    """The curation task: every department's staged tables, through the curated quality
    gate, into the curated tables."""
    from datacloud.config import load_departments

    root = StorageRoot.from_env()
    return curate_all(root, load_departments(), ds, run_id, full=full, check=quality_gate(root, ds))
