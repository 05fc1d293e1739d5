"""The citizen's data tracker (数据使用记录, after Estonia's X-Road Data Tracker): for one ID
number, every lookup of that person in the audit trail, and which department made it, when,
for which matter and case.

The trail stores the looked-up number only as ``key_hmac`` (HMAC-SHA256 under the audit key),
so the tracker hashes the asked number the same way and lists the lookup records carrying that
hash: when (``at``), the requesting ``department`` (code and name), the ``matter`` (code and
name from the matters catalogue), the ``case_no`` (办件编号), the endpoint and the outcome.
Never the clerk (``who``), the role's key id or the purpose text: the person learns which office
looked, not which employee. A citizen's own (answered) tracker views are not listed: they are
no one else's look at the person's data; an auditor's tracker views and audit searches of the
person are, and so is a citizen key refused for asking about this person's number.

Who may ask (``ALLOWED["tracker"]``): an ``auditor`` for any ID number; a ``citizen`` (the
citizen portal's key for one person) only for the number whose HMAC is its key's
``subject_hmac``: another number is 403, audited. Every tracker request is itself audited
(endpoint ``tracker``) before the trail is read. docs/proofs.md#tracker
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.audit_chain import parse, trail_files
from datacloud.lookup.auth import Principal
from datacloud.lookup.keys import MalformedKey, person_key
from datacloud.lookup.service import Forbidden
from datacloud.lookup.tracker_index import indexed_lines
from datacloud.matters import MatterCatalogue

ENDPOINT = "tracker"
PURPOSE = "数据使用记录查询（tracker）"  # what the tracker request's own audit record says
MAX_ENTRIES = 1000
ENDPOINT_ZH = {
    "person": "个人信息查询",
    "enterprise": "企业信息查询",
    "property_status": "不动产权属状况查询",
    "audit_search": "审计查询",
    "tracker": "数据使用记录查询（审计员）",
}
OUTCOME_ZH = {
    "found": "已答复",
    "not_found": "未查到记录",
    "person_unknown": "户籍登记中查无此人，未答复",
    "no_data": "数据未发布，未答复",
    "forbidden": "无权限，已拒绝",
    "matter_not_granted": "事项未授权，已拒绝",
}


class NotOwnNumber(Forbidden):
    """A citizen asked about another person's ID number."""


@dataclass(frozen=True)
class TrackerAnswer:
    entries: list[dict[str, Any]]
    total: int  # entries before ``limit`` cut the list
    audit_id: str


def department_names(folder: Path) -> dict[str, str]:
    """Department code -> name (``name:`` of ``dags/departments/<code>.yaml``); a file that
    cannot be read is skipped (the code is shown without a name)."""
    from datacloud.config import ConfigError, read_yaml

    names: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            doc = read_yaml(path)
        except ConfigError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("name"), str):
            names[str(doc.get("code", path.stem))] = doc["name"]
    return names


def entries_for(
    records: Iterable[dict[str, Any]],
    key_hmac: str,
    catalogue: MatterCatalogue | None = None,
    departments: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The tracker's lines for the person whose number hashes to ``key_hmac``, newest first:
    lookup records with that hash, except the person's own answered tracker views. Pure."""
    departments = departments or {}
    out: list[dict[str, Any]] = []
    for rec in records:
        if rec.get("kind", "lookup") != "lookup" or rec.get("key_hmac") != key_hmac:
            continue
        endpoint = str(rec.get("endpoint", ""))
        if endpoint == ENDPOINT and rec.get("role") == "citizen" and rec.get("outcome") == "found":
            continue  # the person's own view (answered: only ever for the own number)
        matter = rec.get("matter")
        known = catalogue.matters.get(matter) if catalogue and isinstance(matter, str) else None
        dept = rec.get("department")
        outcome = str(rec.get("outcome", ""))
        out.append(
            {
                "at": rec.get("at"),
                "department": dept,
                "department_name": departments.get(dept) if isinstance(dept, str) else None,
                "matter": matter,
                "matter_name": known.name_zh if known else None,
                "case_no": rec.get("case_no"),
                "endpoint": endpoint,
                "endpoint_name": ENDPOINT_ZH.get(endpoint),
                "outcome": outcome,
                "outcome_name": OUTCOME_ZH.get(outcome.split(":")[0], "格式错误，未答复"),
            }
        )
    # newest first; records of the same millisecond newest first too (the trail's order,
    # reversed: a stable sort keeps it among equal times)
    out.reverse()
    out.sort(key=lambda e: str(e["at"]), reverse=True)
    return out


def _lines_with(folder: Path, key_hmac: str) -> Iterator[dict[str, Any]]:
    """The records of the trail in ``folder`` whose ``key_hmac`` is ``key_hmac``, oldest file
    first. Each closed day (every file but the newest) through its sidecar index
    (``datacloud.lookup.tracker_index``: built once, rebuilt when the day file changed); the
    newest file, still appended, by a byte search for the HMAC with only those lines parsed. A
    torn or unparseable line is skipped, as ``FileSink.records`` skips it. docs/proofs.md#tracker
    """
    files = trail_files(folder)
    for _, path in files[:-1]:
        yield from indexed_lines(path, key_hmac)
    needle = key_hmac.encode("ascii")
    for _, path in files[-1:]:
        with path.open("rb") as fh:
            for raw in fh:  # bounded by the file
                if needle in raw and raw.endswith(b"\n"):
                    rec = parse(raw)
                    if rec is not None and rec.get("key_hmac") == key_hmac:
                        yield rec


class Tracker:
    """The tracker over an audit log (its sinks that can read records back)."""

    def __init__(
        self,
        audit: AuditLog,
        catalogue: MatterCatalogue | None = None,
        departments: Mapping[str, str] | None = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.audit = audit
        self.catalogue = catalogue
        # the requesting-only departments (税务, 人社) have no YAML: their names are the catalogue's
        names = catalogue.department_names() if catalogue is not None else {}
        self.departments = {**names, **(departments or {})}
        self.today = today

    def track(
        self, principal: Principal, raw_id_number: str, limit: int = MAX_ENTRIES
    ) -> TrackerAnswer:
        """The lookups of one person (newest first, at most ``limit``); ``Forbidden`` for a role
        without the tracker or a citizen asking about another number, ``MalformedKey`` for a
        number that is not one; each of these audited, like the answered request."""
        raw = raw_id_number.strip()
        if not principal.may(ENDPOINT):
            self.audit.record(principal, ENDPOINT, PURPOSE, raw, "forbidden")
            raise Forbidden(f"role {principal.role} may not use the data tracker")
        try:
            number = person_key(raw_id_number, self.today())
        except MalformedKey as e:
            self.audit.record(principal, ENDPOINT, PURPOSE, raw, f"malformed:{e.code}")
            raise
        wanted = self.audit.key_hash(number)
        if principal.role == "citizen" and not hmac.compare_digest(
            wanted, principal.subject_hmac or ""
        ):
            self.audit.record(principal, ENDPOINT, PURPOSE, number, "forbidden")
            raise NotOwnNumber("a citizen key may see the lookups of its own ID number only")
        record = self.audit.record(principal, ENDPOINT, PURPOSE, number, "found")
        records: list[dict[str, Any]] = []
        for sink in self.audit.sinks:
            if isinstance(sink, FileSink):
                records.extend(_lines_with(sink.folder, wanted))
                continue
            read = getattr(sink, "records", None)
            if read is not None:
                records.extend(r for r in read() if r.get("key_hmac") == wanted)
        entries = entries_for(records, wanted, self.catalogue, self.departments)
        return TrackerAnswer(entries[:limit], len(entries), str(record["id"]))
