"""Cross-department consistency (比对): where a department's data disagrees with the authority.

``curated/consistency`` holds one row per finding, person and department: the finding code and
its Chinese label, the department whose data disagrees, the authoritative department (from the
``authority:`` lists of the department YAMLs), the field, the kinds of record it was seen in,
the person's ID number (the only personal data: the table is for platform operators, reports
mask it) and the business date. Findings:

- ``name_conflict`` / ``sex_conflict``: a department other than the authority for ``name`` /
  ``sex`` writes another value for the same ID number, after normalisation (so spaces in a
  name, dot variants or a legacy 15-digit number are no findings);
- ``unregistered_owner`` / ``unregistered_legal_rep`` / ``unregistered_shareholder`` /
  ``unregistered_person``: a property owner, legal representative, shareholder or a person of
  another department's person table whose ID number the household register (the person tables
  of the authority for ``name``) does not hold (such a person is not in curated/person);
- ``marital_conflict`` (a 结婚 registered while an earlier marriage of the person has no
  divorce) and ``divorce_without_marriage`` (a 离婚 with no earlier 结婚 of the same pair), from
  the registrations of the marriage tables, checked against the authority for ``marital_status``.

Only accepted (staged) rows are compared; a rejected row is the department's own problem and
is in its report. Rejected rows still matter in one way: when tonight's rejected rows of the
register (or of a marriage table) hold the person's number (the first 17 characters, however
mistyped the check character), the register's (or the marriage history's) silence proves
nothing, so no ``unregistered_*`` (or marital) finding is made for that person.

This module is the pure part (Arrow tables in, findings out: ``find_inconsistencies``);
``consistency_night`` reads the staged and rejected tables and publishes ``curated/consistency``.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from datacloud.config import REGISTER_FIELD, Department
from datacloud.curated_tables import CONSISTENCY, DATE, STRING

log = logging.getLogger(__name__)

TABLE = CONSISTENCY.name
KEEP_NIGHTS = 30  # earlier nights' findings kept for the reports of those nights
MARRY, DIVORCE = "结婚", "离婚"


@dataclass(frozen=True)
class Finding:
    code: str
    zh: str
    field: str  # the person's field that disagrees
    authority: str  # the authority field (department YAML) naming the authoritative department


FINDINGS: dict[str, Finding] = {
    f.code: f
    for f in (
        Finding("name_conflict", "姓名与户籍登记不一致", "name", "name"),
        Finding("sex_conflict", "性别与户籍登记不一致", "sex", "sex"),
        Finding(
            "unregistered_owner", "不动产权利人在户籍登记中查无此人", "id_number", REGISTER_FIELD
        ),
        Finding(
            "unregistered_legal_rep", "法定代表人在户籍登记中查无此人", "id_number", REGISTER_FIELD
        ),
        Finding(
            "unregistered_shareholder", "股东在户籍登记中查无此人", "id_number", REGISTER_FIELD
        ),
        Finding("unregistered_person", "人员在户籍登记中查无此人", "id_number", REGISTER_FIELD),
        Finding(
            "marital_conflict",
            "已有婚姻未登记离婚又登记结婚",
            "marital_status",
            "marital_status",
        ),
        Finding(
            "divorce_without_marriage",
            "离婚登记无对应的结婚登记",
            "marital_status",
            "marital_status",
        ),
    )
}
_TYPES = {STRING: pa.string(), DATE: pa.date32()}
SCHEMA = pa.schema([(c.name, _TYPES[c.type]) for c in CONSISTENCY.columns])  # the registry's
SORT_BY = list(CONSISTENCY.sort_by)

# Person columns per kind of record: (ID column, name column, sex column, role of the person)
MENTIONS: dict[str, list[tuple[str, str | None, str | None, str]]] = {
    "person": [("id_number", "name", "sex", "person")],
    "housing_fund_account": [("id_number", "name", "sex", "account_holder")],
    "property_right": [("owner_id_number", "owner_name", "owner_sex", "owner")],
    "enterprise": [("legal_rep_id_number", "legal_rep_name", None, "legal_rep")],
    "enterprise_role": [("id_number", "name", None, "shareholder")],
    "marriage": [
        ("husband_id_number", "husband_name", None, "husband"),
        ("wife_id_number", "wife_name", None, "wife"),
    ],
}
UNREGISTERED = {
    "owner": "unregistered_owner",
    "legal_rep": "unregistered_legal_rep",
    "shareholder": "unregistered_shareholder",
    "person": "unregistered_person",  # a person table of another department (curated/person: no)
}
MENTION_SCHEMA = pa.schema(
    [
        ("id_number", pa.string()),
        ("name", pa.string()),
        ("sex", pa.string()),
        ("department", pa.string()),
        ("kind", pa.string()),
        ("role", pa.string()),
    ]
)
# a mask of the ID numbers whose findings are wanted (``find_inconsistencies``'s ``persons``)
PersonMask = Callable[[pa.Array | pa.ChunkedArray], pa.Array]
MARRIAGE_SCHEMA = pa.schema(
    [
        ("registration_type", pa.string()),
        ("husband_id_number", pa.string()),
        ("wife_id_number", pa.string()),
        ("registered_date", pa.date32()),
        ("department", pa.string()),
    ]
)


# -- the pure part ---------------------------------------------------------------------------


def id_body(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The first 17 characters of ID numbers as a person typed them, or null.

    Full-width digits and spaces are undone and a legacy 15-digit number is upgraded, so a
    rejected number with a wrong check character still names its person.
    """
    text = pc.utf8_normalize(pc.cast(values, pa.string()), "NFKC")
    text = pc.utf8_upper(pc.replace_substring_regex(text, r"\s+", ""))
    legacy = pc.match_substring_regex(text, r"^[0-9]{15}$")
    upgraded = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(text, 0, 6), "19", pc.utf8_slice_codeunits(text, 6, 15), ""
    )
    text = pc.if_else(legacy, upgraded, text)
    body = pc.utf8_slice_codeunits(text, 0, 17)
    ok = pc.match_substring_regex(body, r"^[0-9]{17}$")
    out = pc.if_else(ok, body, pa.scalar(None, pa.string()))
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def _in(values: pa.Array | pa.ChunkedArray, value_set: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``values`` found in ``value_set`` (nulls: False)."""
    if isinstance(value_set, pa.ChunkedArray):
        value_set = value_set.combine_chunks()
    found = pc.fill_null(pc.is_in(values, value_set=value_set), False)
    return found.combine_chunks() if isinstance(found, pa.ChunkedArray) else found


def _authority(authority: Mapping[str, Iterable[str]], field: str) -> list[str]:
    return sorted(authority.get(field, ()))


def _rows(code: str, frame: pa.Table, authority: Mapping[str, Iterable[str]], ds: date) -> pa.Table:
    """Finding rows from a table of (id_number, department, kind): one per person and
    department, the kinds of record joined."""
    finding = FINDINGS[code]
    if frame.num_rows == 0:
        return SCHEMA.empty_table()
    grouped = frame.group_by(["department", "id_number"], use_threads=False).aggregate(
        [("kind", "distinct")]
    )
    kinds = [",".join(sorted(k)) for k in grouped["kind_distinct"].to_pylist()]
    n = grouped.num_rows
    auth = ",".join(_authority(authority, finding.authority))
    return pa.table(
        {
            "finding": pa.array([code] * n, pa.string()),
            "finding_zh": pa.array([finding.zh] * n, pa.string()),
            "department": grouped["department"],
            "authoritative_department": pa.array([auth] * n, pa.string()),
            "field": pa.array([finding.field] * n, pa.string()),
            "record_kinds": pa.array(kinds, pa.string()),
            "id_number": grouped["id_number"],
            "business_date": pa.array([ds] * n, pa.date32()),
        },
        schema=SCHEMA,
    )


def _value_conflicts(
    mentions: pa.Table, authority: Mapping[str, Iterable[str]], field: str, ds: date
) -> pa.Table:
    """Mentions outside the authority whose ``field`` is none of the authority's values."""
    owners = pa.array(_authority(authority, field), pa.string())
    known = mentions.filter(
        pc.and_(
            pc.and_(pc.is_in(mentions["department"], owners), pc.equal(mentions["kind"], "person")),
            pc.is_valid(mentions[field]),
        )
    )
    others = mentions.filter(
        pc.and_(pc.invert(pc.is_in(mentions["department"], owners)), pc.is_valid(mentions[field]))
    )
    pairs = known.select(["id_number", field]).group_by(["id_number", field]).aggregate([])
    differ = others.join(pairs, keys=["id_number", field], join_type="left anti")
    differ = differ.filter(_in(differ["id_number"], known["id_number"]))
    code = f"{field}_conflict"
    return _rows(code, differ.select(["id_number", "department", "kind"]), authority, ds)


def _unregistered(
    mentions: pa.Table,
    authority: Mapping[str, Iterable[str]],
    register_quarantine: pa.Array,
    ds: date,
) -> list[pa.Table]:
    owners = pa.array(_authority(authority, REGISTER_FIELD), pa.string())
    register = mentions.filter(
        pc.and_(pc.is_in(mentions["department"], owners), pc.equal(mentions["kind"], "person"))
    )
    out = []
    for role, code in UNREGISTERED.items():
        rows = mentions.filter(pc.equal(mentions["role"], role))
        rows = rows.filter(pc.invert(_in(rows["id_number"], register["id_number"])))
        rows = rows.filter(pc.invert(_in(id_body(rows["id_number"]), register_quarantine)))
        out.append(_rows(code, rows.select(["id_number", "department", "kind"]), authority, ds))
    return out


def _marital(
    marriages: pa.Table,
    authority: Mapping[str, Iterable[str]],
    quarantine: pa.Array,
    ds: date,
    persons: PersonMask | None = None,
) -> list[pa.Table]:
    """Replay each person's registrations in date order (divorces first on a day).

    Each registration is an event of the husband (the wife his spouse) and one of the wife;
    a registration without a date makes both persons' histories undecidable. Only the
    persons ``persons`` keeps are replayed (all when None): a person's events are all in
    ``marriages`` whenever the person is, whichever bucket the spouse falls in."""
    rows = marriages.filter(
        pc.and_(
            pc.is_in(marriages["registration_type"], pa.array([MARRY, DIVORCE])),
            pc.and_(
                pc.is_valid(marriages["husband_id_number"]),
                pc.is_valid(marriages["wife_id_number"]),
            ),
        )
    )
    undated = rows.filter(pc.is_null(rows["registered_date"]))
    undecidable = pa.chunked_array(
        [*undated["husband_id_number"].chunks, *undated["wife_id_number"].chunks], pa.string()
    )
    dated = rows.filter(pc.is_valid(rows["registered_date"]))
    step = pc.if_else(pc.equal(dated["registration_type"], DIVORCE), 0, 1)
    sides = [
        ("husband_id_number", "wife_id_number"),
        ("wife_id_number", "husband_id_number"),
    ]
    events = pa.concat_tables(
        pa.table(
            {
                "person": dated[person],
                "when": dated["registered_date"],
                "step": step,
                "spouse": dated[spouse],
                "department": dated["department"],
            }
        )
        for person, spouse in sides
    )
    keep = pc.invert(_in(events["person"], undecidable))
    if persons is not None:
        keep = pc.and_(keep, persons(events["person"]))
    events = events.filter(keep)
    events = events.filter(pc.invert(_in(id_body(events["person"]), quarantine)))
    # each person's events in the order of (date, divorces first, spouse, department)
    events = events.sort_by([(c, "ascending") for c in events.column_names])
    found: dict[str, list[tuple[str, str]]] = {
        "marital_conflict": [],
        "divorce_without_marriage": [],
    }
    current: str | None = None
    married: set[str] = set()
    codes: dict[str, str] = {}
    for person, step_, spouse, dept in zip(
        events["person"].to_pylist(),
        events["step"].to_pylist(),
        events["spouse"].to_pylist(),
        events["department"].to_pylist(),
        strict=True,
    ):
        if person != current:
            _flush(found, current, codes)
            current, married, codes = person, set(), {}
        if step_ == 1:
            if married - {spouse}:
                codes.setdefault("marital_conflict", dept)
            married.add(spouse)
        elif spouse in married:
            married.discard(spouse)
        else:
            codes.setdefault("divorce_without_marriage", dept)
    _flush(found, current, codes)
    out = []
    for code, hits in found.items():
        frame = pa.table(
            {
                "id_number": pa.array([p for p, _ in hits], pa.string()),
                "department": pa.array([d for _, d in hits], pa.string()),
                "kind": pa.array(["marriage"] * len(hits), pa.string()),
            }
        )
        out.append(_rows(code, frame, authority, ds))
    return out


def _flush(
    found: dict[str, list[tuple[str, str]]], person: str | None, codes: dict[str, str]
) -> None:
    """One person's replayed findings (code -> the department of the first) into ``found``."""
    if person is not None:
        for code, dept in codes.items():
            found[code].append((person, dept))


def find_inconsistencies(
    mentions: pa.Table,
    marriages: pa.Table,
    authority: Mapping[str, Iterable[str]],
    ds: date,
    register_quarantine: pa.Array | None = None,
    marriage_quarantine: pa.Array | None = None,
    persons: PersonMask | None = None,
) -> pa.Table:
    """Every finding of one night, sorted by department, finding and ID number.

    ``mentions``: one row per person seen in a record (``MENTION_SCHEMA``: id_number, name, sex,
    department, kind of record, role: person, account_holder, owner, legal_rep, shareholder,
    husband, wife); values already normalised. ``marriages``: the registrations
    (``MARRIAGE_SCHEMA``). ``authority``: authority field -> department codes.
    ``register_quarantine`` / ``marriage_quarantine``: ``id_body`` of the ID numbers in
    tonight's rejected rows of the register and of the marriage tables. Output: ``SCHEMA``.

    ``persons``: only the findings about the ID numbers this mask keeps (one bucket of the
    population, ``consistency_night.build``); None: all. Every finding is about one ID number
    and compares only rows of that same ID number (the quarantines aside), so the findings of
    a bucket need only the mentions of its ID numbers and the registrations where the husband
    or the wife is one of them; a person's marital history is replayed in the bucket of the
    person only, so a couple split across two buckets gives each person's findings once.
    """
    empty = pa.array([], pa.string())
    register_quarantine = empty if register_quarantine is None else register_quarantine
    marriage_quarantine = empty if marriage_quarantine is None else marriage_quarantine
    parts = [
        _value_conflicts(mentions, authority, "name", ds),
        _value_conflicts(mentions, authority, "sex", ds),
        *_unregistered(mentions, authority, register_quarantine, ds),
        *_marital(marriages, authority, marriage_quarantine, ds, persons),
    ]
    table = pa.concat_tables(parts)
    if persons is not None:
        table = table.filter(persons(table["id_number"]))
    return table.sort_by([(k, "ascending") for k in SORT_BY])


def count_by_department(findings: pa.Table) -> dict[str, dict[str, int]]:
    """Findings per department and finding code: ``{"bdc": {"unregistered_owner": 3}}``."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for dept, code in zip(
        findings["department"].to_pylist(), findings["finding"].to_pylist(), strict=True
    ):
        counts[dept][code] += 1
    return {d: dict(sorted(c.items())) for d, c in sorted(counts.items())}


def authority_of(depts: list[Department]) -> dict[str, list[str]]:
    """Authority field -> the codes of the departments declaring it (一数一源)."""
    out: dict[str, list[str]] = defaultdict(list)
    for dept in depts:
        for field in dept.authority:
            out[field].append(dept.code)
    return dict(out)
