"""The registry of curated tables (datacloud/curated_tables.py) against its consumers: the
curated quality suites (expectations/curated_*.json), docs/data-dictionary.md, the builders'
layouts, the lookup snapshot and the clerk's masking."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from datacloud import curate, curated_tables
from datacloud.canonical import CURATED_TABLES, KINDS
from datacloud.curated_tables import KEY, TABLES
from datacloud.curation_config import ENTERPRISE_FIELDS, PERSON_FIELDS
from datacloud.lookup import answers, snapshot
from datacloud.quality_suites import columns as suite_columns

REPO = Path(__file__).resolve().parents[2]
DICTIONARY = (REPO / "docs" / "data-dictionary.md").read_text(encoding="utf-8")
SUITES = {
    p.stem: json.loads(p.read_text("utf-8")) for p in REPO.glob("expectations/curated_*.json")
}
GATED = {n: t for n, t in TABLES.items() if t.suite is not None}


def test_every_curated_suite_belongs_to_a_table_and_every_gated_table_has_its_suite() -> None:
    assert sorted(SUITES) == sorted(t.suite for t in GATED.values())
    for name, t in GATED.items():
        meta = SUITES[t.suite]["meta"]["datacloud"]  # type: ignore[index]
        assert meta["table"] == name and meta["layer"] == "curated"
        assert meta["key"] == list(t.key), name


@pytest.mark.parametrize("name", sorted(GATED))
def test_every_column_a_suite_reads_is_a_column_of_the_table(name: str) -> None:
    t = GATED[name]
    suite = SUITES[t.suite]  # type: ignore[index]
    published = t.published()
    meta = suite["meta"]["datacloud"]
    named = [*meta["identifiers"], *meta["links"], *meta["key"]]
    if "birth_date_from" in meta:
        named.append(meta["birth_date_from"])
    for column in suite_columns(suite):
        if column != "key":  # <column>__valid, <column>__resolves, <a>__matches_<b>
            named.extend(c for c in re.split(r"__(?:valid|resolves|matches_)", column) if c)
    missing = sorted({c for c in named if c not in published})
    assert missing == [], f"{t.suite} reads columns curated/{name} does not have"
    for link in meta["links"].values():
        assert link["column"] in TABLES[link["table"]].published()


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_column_of_the_registry_is_in_the_data_dictionary(name: str) -> None:
    t = TABLES[name]
    section = _section(name)
    wanted = t.published()
    if t.golden:  # "<field>_source" and "<field>_as_of" are documented once for all fields
        wanted = {c: v for c, v in wanted.items() if not c.endswith(("_source", "_as_of"))}
    if name in curated_tables.RELATIONS or name == "enterprise_role":
        wanted.pop(KEY)  # the Relations table documents each ``_key`` in its own column
    missing = [c for c in wanted if f"`{c}`" not in section]
    assert missing == [], f"docs/data-dictionary.md does not document curated/{name} {missing}"


def _section(name: str) -> str:
    """The table's part of the data dictionary: its own heading, or its Relations row."""
    heading = re.search(rf"^## curated/{name}\b.*?(?=^## )", DICTIONARY, re.M | re.S)
    if heading:
        return heading.group(0)
    row = re.search(rf"^\| `{name}` \|.*$", DICTIONARY, re.M)
    assert row, f"docs/data-dictionary.md has no section or Relations row for curated/{name}"
    return row.group(0)


def test_the_consumers_read_the_registry() -> None:
    assert tuple(TABLES) == CURATED_TABLES
    assert list(curate.LAYOUT) == list(curated_tables.BUILT) == list(curate.BUILDERS)
    for name, (merge_key, sort_by) in curate.LAYOUT.items():
        assert (merge_key, tuple(sort_by)) == (TABLES[name].merge_key, TABLES[name].sort_by)
    assert snapshot.TABLES == curated_tables.LOOKUP
    assert {n: TABLES[n].indexes for n in curated_tables.LOOKUP} == snapshot.INDEXES
    assert list(PERSON_FIELDS) == [f.name for f in curated_tables.PERSON.fields]
    assert list(ENTERPRISE_FIELDS) == [f.name for f in curated_tables.ENTERPRISE.fields]
    for part, table in answers.PART_TABLES.items():
        assert answers.CLERK_COLUMNS[part] == TABLES[table].clerk


@pytest.mark.parametrize("name", sorted(TABLES))
def test_declarations_are_consistent(name: str) -> None:
    t = TABLES[name]
    published = t.published()
    assert set(t.sort_by) <= set(published) and set(t.key) <= set(published)
    assert t.merge_key in published and (t.merge_key == KEY) == (KEY in published)
    assert set(t.indexes) <= set(published)
    assert set(t.sources) <= set(KINDS)
    # the clerk's allow-list: golden tables list fields, the others columns
    allowed = {f.name for f in t.fields} if t.golden else set(published)
    assert set(t.clerk) <= allowed | set(published), name
    assert not [c for c in t.clerk if c.startswith("_")], "internal columns are never shown"
