"""The resource catalogue's facts and files: what each curated table's Delta log and the
night's curated quality gate say, built into the catalogue (``datacloud.resource_catalogue``)
and written to ``<state root>/catalogue/`` as ``catalogue.json`` and ``index.html``.

The curation night rebuilds it at its end (``curation_night.curate_night``), also when the
quality gate kept a table unpublished; ``datacloud catalogue build`` does the same by hand.
Row counts come from the Delta log (each data file's record count less the rows its deletion
vector deletes), never from a scan of the data.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

from datacloud import delta
from datacloud.atomic import replace_text
from datacloud.business_day import SHANGHAI, from_millis
from datacloud.config import Department
from datacloud.curated_tables import TABLES
from datacloud.curation_config import CurationConfig, load_curation_config
from datacloud.matters import load_matters
from datacloud.paths import StorageRoot
from datacloud.quality import CURATED_SCOPE
from datacloud.resource_catalogue import (
    Catalogue,
    GateFacts,
    MattersReading,
    PublishFacts,
    build,
    gate_facts,
)
from datacloud.resource_catalogue_html import render
from datacloud.storage import DataPath

log = logging.getLogger(__name__)
JSON_NAME, HTML_NAME = "catalogue.json", "index.html"
HISTORY_LOOKBACK = 20  # commits read back for the last one our publish or upkeep wrote


def catalogue_dir(root: StorageRoot) -> Path:
    """``<state root>/catalogue``: catalogue.json and index.html."""
    return root.root / "catalogue"


def publish_facts(path: DataPath) -> PublishFacts | None:
    """The table's current version, its commit time and business date, live rows and schema;
    None when the table has not been published."""
    dt = delta.open_table(path)
    if dt is None:
        return None
    commits = dt.history(HISTORY_LOOKBACK)
    ours = next((c for c in commits if c.get("datacloud.ds")), commits[0] if commits else {})
    ts = ours.get("timestamp")
    schema = {f.name: _type_name(f.type) for f in dt.schema().fields}
    return PublishFacts(
        version=dt.version(),
        published_at=from_millis(int(ts)) if isinstance(ts, int) else None,
        business_date=ours.get("datacloud.ds"),
        rows=delta.live_rows(dt),
        schema=schema,
    )


def _type_name(t: Any) -> str:
    """A Delta schema type as the docs write it (``string``, ``date``, ``decimal(20,6)``)."""
    name = getattr(t, "type", None)
    return name if isinstance(name, str) else str(t)


def gate_of(root: StorageRoot, ds: date | None, table: str) -> GateFacts | None:
    """The table's curated gate entry of the night, or None when it was not checked."""
    if ds is None:
        return None
    path = root.quality() / CURATED_SCOPE / ds.isoformat() / f"{table}.json"
    if not path.is_file():
        return None
    return gate_facts(json.loads(path.read_text(encoding="utf-8")))


def last_night(root: StorageRoot) -> date | None:
    """The business date of the last completed curation (``curated/_curation.json``)."""
    path = root.root / "curated" / "_curation.json"
    if not path.is_file():
        return None
    ds = json.loads(path.read_text(encoding="utf-8")).get("ds")
    return date.fromisoformat(ds) if ds else None


def build_catalogue(
    root: StorageRoot,
    depts: list[Department],
    ds: date | None = None,
    *,
    config: CurationConfig | None = None,
    matters: MattersReading | None = None,
    now: datetime | None = None,
) -> Catalogue:
    """The catalogue as of now: each table's Delta log, the night ``ds``'s gate (default: the
    last completed curation's), the matters of ``dags/matters.yaml`` (``DATACLOUD_MATTERS``)."""
    config = config or load_curation_config()
    matters = matters if matters is not None else load_matters()
    ds = ds or last_night(root)
    facts = {name: publish_facts(root.curated(name)) for name in TABLES}
    gates = {name: gate_of(root, ds, name) for name in TABLES}
    paths = {name: str(root.curated(name)) for name in TABLES}
    return build(
        depts,
        config,
        matters,
        facts,
        gates,
        business_date=ds.isoformat() if ds else None,
        generated_at=now or datetime.now(SHANGHAI),
        paths=paths,
    )


def write_catalogue(root: StorageRoot, catalogue: Catalogue) -> Path:
    """catalogue.json, then index.html, each replaced atomically; returns index.html."""
    folder = catalogue_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    replace_text(folder / JSON_NAME, catalogue.model_dump_json(indent=2) + "\n")
    replace_text(folder / HTML_NAME, render(catalogue))
    return folder / HTML_NAME


def rebuild(root: StorageRoot, depts: list[Department], ds: date | None = None) -> Path:
    """Build and write the catalogue (the curation night's last step); returns index.html."""
    out = write_catalogue(root, build_catalogue(root, depts, ds))
    log.info("resource catalogue: %s", out)
    return out
