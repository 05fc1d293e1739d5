"""``datacloud audit``: check the lookup audit trail's hash chain.

``datacloud audit verify [--day D] [--folder F] [--anchor FILE] [--json]`` walks the day files
(oldest first, or one day and its link to the day before) and prints the first broken link:
file, line and record id. ``--anchor`` compares the trail with anchors kept elsewhere (a JSON
object or list of ``day_anchor`` results, e.g. from the night's report), which catches records
removed or replaced at the end of a day. Exit codes: 0 intact, 1 broken, 2 bad usage (a bad
date, a missing folder, an unreadable anchor file).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

audit_app = typer.Typer(
    help="The lookup audit trail: verify its hash chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _anchors(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise _fail(f"--anchor: cannot read {path}: {type(e).__name__}", 2) from None
    items = data if isinstance(data, list) else [data]
    for item in items:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("day"), str)
            and isinstance(item.get("records"), int)
            and isinstance(item.get("last_hash"), str)
        ):
            raise _fail(f"--anchor: {path}: each anchor needs day, records and last_hash", 2)
    return items


@audit_app.command()
def verify(
    day: Annotated[
        str | None,
        typer.Option("--day", help="YYYY-MM-DD: that day's file and its link to the day before"),
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option("--folder", help="the audit folder (default: <DATACLOUD_STATE_ROOT>/audit)"),
    ] = None,
    anchor: Annotated[
        Path | None,
        typer.Option("--anchor", help="JSON file of day anchors (day, records, last_hash)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the verdict as JSON")] = False,
) -> None:
    """Walk the hash chain; report the first broken link. Exit 0 intact, 1 broken, 2 usage."""
    from datacloud.lookup.audit_chain import check_anchor
    from datacloud.lookup.audit_chain import verify as walk
    from datacloud.paths import StorageRoot

    if day is not None:
        try:
            day = date.fromisoformat(day).isoformat()
        except ValueError:
            raise _fail(f"--day: expected YYYY-MM-DD, got {day!r}", 2) from None
    if folder is None:
        folder = StorageRoot.from_env().audit()
    if not folder.is_dir():
        raise _fail(f"--folder: {folder} is not a folder", 2)
    anchors = _anchors(anchor) if anchor is not None else []
    verdict = walk(folder, day)
    mismatches = [m for a in anchors if (m := check_anchor(folder, a))]
    if as_json:
        out = asdict(verdict)
        out["broken"] = str(verdict.broken) if verdict.broken else None
        out["where"] = asdict(verdict.broken) if verdict.broken else None
        out["anchor_mismatches"] = mismatches
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        for warning in verdict.warnings:
            typer.echo(f"warning: {warning}")
        if verdict.broken:
            typer.echo(f"BROKEN: {verdict.broken}")
        for mismatch in mismatches:
            typer.echo(f"ANCHOR MISMATCH: {mismatch}")
        if not verdict.broken and not mismatches:
            scope = f"day {day}" if day else "the trail"
            note = f", {verdict.unchained} from before the chain" if verdict.unchained else ""
            typer.echo(
                f"intact: {scope}, {verdict.records} records{note} in {verdict.files} files"
                f" ({verdict.alg or '-'}), last hash {verdict.last_hash or '-'}"
                + (f", {len(anchors)} anchors match" if anchors else "")
            )
    if verdict.broken or mismatches:
        raise typer.Exit(1)
