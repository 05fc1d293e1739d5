"""``datacloud tracker ID_NUMBER``: the data tracker from a shell (an auditor's tool).

Runs as the local operator (``os:<user>``, role ``auditor``, channel ``cli``) with the audit
key and trail of the environment, like ``datacloud lookup``; the request is audited. Prints,
newest first, each lookup of the person: when, the requesting department, the matter, the case
number, the endpoint and the outcome (never the clerk). Exit codes: 0 listed (also none),
2 malformed ID number or bad option, 3 audit key missing or the trail unwritable.
docs/proofs.md#tracker
"""

from __future__ import annotations

import json
from typing import Annotated

import typer


def _fail(message: str, code: int) -> typer.Exit:
    from datacloud.masking import mask_text

    typer.echo(f"error: {mask_text(message)}", err=True)
    return typer.Exit(code)


def tracker_command(
    id_number: Annotated[str, typer.Argument(help="公民身份号码 of the person")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many lines")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print the lines as JSON")] = False,
) -> None:
    """Who looked up this person's data (数据使用记录): when, which department, which matter and
    case number. Audited."""
    from datacloud.config import ConfigError
    from datacloud.lookup.audit import (
        AuditKeyMissing,
        AuditLog,
        AuditUnavailable,
        FileSink,
        audit_key_from_env,
    )
    from datacloud.lookup.auth import Principal
    from datacloud.lookup.cli import os_user
    from datacloud.lookup.keys import MalformedKey
    from datacloud.lookup.tracker import Tracker, department_names
    from datacloud.matters import load_matters
    from datacloud.paths import StorageRoot, departments_dir

    try:
        audit_key, dev = audit_key_from_env()
    except AuditKeyMissing as e:
        raise _fail(str(e), 3) from None
    try:
        catalogue = load_matters()
    except ConfigError as e:  # as `lookup` does: the deployment's configuration, not the call
        raise _fail(str(e), 3) from None
    root = StorageRoot.from_env()
    tracker = Tracker(
        AuditLog([FileSink(root.audit())], audit_key, dev),
        catalogue,
        department_names(departments_dir()),
    )
    who = Principal(f"os:{os_user()}", "auditor", "cli")
    try:
        found = tracker.track(who, id_number, limit)
    except MalformedKey as e:
        raise _fail(f"{e} ({e.message_zh})", 2) from None
    except AuditUnavailable as e:
        raise _fail(str(e), 3) from None
    if as_json:
        body = {"entries": found.entries, "total": found.total, "audit_id": found.audit_id}
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{found.total} lookups of this person (数据使用记录), newest first:")
    for line in found.entries:
        dept = line["department_name"] or line["department"] or "-"
        matter = line["matter_name"] or line["matter"] or "-"
        typer.echo(
            f"  {line['at']}  {dept}  {matter}  办件 {line['case_no'] or '-'}  "
            f"{line['endpoint_name'] or line['endpoint']}  {line['outcome_name']}"
        )
    typer.echo(f"audit id: {found.audit_id}")
