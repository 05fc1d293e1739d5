"""The lookups as one service used by the HTTP API and the CLI.

Order of one lookup: role check, key normalisation, the answer from the curated view, the
audit record (written and fsynced), then the answer, masked for a clerk. A refused, malformed
or unanswerable lookup is audited too; when the audit write fails, ``AuditUnavailable``
propagates and nothing is answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from datacloud.lookup import answers
from datacloud.lookup.answers import CuratedView
from datacloud.lookup.audit import AuditLog
from datacloud.lookup.auth import Principal
from datacloud.lookup.keys import MalformedKey, enterprise_key, person_key
from datacloud.lookup.store import NoCuratedData

ENDPOINTS = ("person", "enterprise", "property_status")


BLANK_PURPOSE = "purpose: a lookup needs a purpose"


def is_blank(purpose: str) -> bool:
    """No purpose: empty or only whitespace, as Python sees it (``str.strip``, which also takes
    the control characters U+001C-U+001F that a regex ``\\S`` lets through)."""
    return not purpose.strip()


class Forbidden(PermissionError):
    """The principal's role may not call this endpoint."""


class NotFound(LookupError):
    """No curated record for the key (the message holds no number)."""


class PersonUnknown(NotFound):
    """A property status of a valid ID number the household register does not know and no
    current property right names: "owns no property" would certify a person the platform knows
    nothing about (a migrant from another province, a mistyped number that happens to be
    valid), so there is no answer (HTTP 404 ``PERSON_UNKNOWN``, CLI exit 4)."""

    message_zh = "户籍登记中查无此人：平台无法确认其在本省没有房产，不能据此出具无房证明。"


class CuratedSource(Protocol):
    def current(self) -> CuratedView: ...
    def as_of(self, ds: str) -> CuratedView: ...


@dataclass
class Answer:
    body: dict[str, Any]
    audit_id: str


class LookupService:
    def __init__(
        self, source: CuratedSource, audit: AuditLog, today: Callable[[], date] = date.today
    ) -> None:
        self.source = source
        self.audit = audit
        self.today = today

    def lookup(
        self,
        principal: Principal,
        endpoint: str,
        raw_key: str,
        purpose: str,
        as_of: date | None = None,
    ) -> Answer:
        """Answer one lookup (``person``, ``enterprise`` or ``property_status``)."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown lookup endpoint {endpoint!r}")
        ds = as_of.isoformat() if as_of else None
        if is_blank(purpose):
            raise ValueError(BLANK_PURPOSE)
        if not principal.may(endpoint):
            self.audit.record(principal, endpoint, purpose, raw_key.strip(), "forbidden", ds)
            raise Forbidden(f"role {principal.role} may not call {endpoint}")
        try:
            if endpoint == "enterprise":
                ekey = enterprise_key(raw_key)
                number = ekey.value
            else:
                number = person_key(raw_key, self.today())
        except MalformedKey as e:
            self.audit.record(
                principal, endpoint, purpose, raw_key.strip(), f"malformed:{e.code}", ds
            )
            raise
        try:
            view = self.source.as_of(ds) if ds else self.source.current()
        except NoCuratedData:
            self.audit.record(principal, endpoint, purpose, number, "no_data", ds)
            raise
        if endpoint == "property_status":
            # no property register or household register means no answer, never a false "no"
            when = f" on or before {ds}" if ds else ""
            for table, what in (("property_right", "property"), ("person", "household")):
                if view.version(table) is None:
                    self.audit.record(principal, endpoint, purpose, number, "no_data", ds)
                    raise NoCuratedData(
                        f"the {what} register (curated {table}) is not published{when}"
                    )
        body: dict[str, Any] | None
        if endpoint == "person":
            body = answers.person(view, number)
        elif endpoint == "enterprise":
            body = answers.enterprise(view, ekey)
        else:
            body = answers.property_status(view, number)
        unknown = (
            body is not None and body.get("person_known") is False and not body["owns_property"]
        )
        outcome = "person_unknown" if unknown else ("found" if body else "not_found")
        record = self.audit.record(principal, endpoint, purpose, number, outcome, ds)
        if unknown:
            raise PersonUnknown(
                "the household register does not know this person: no property status is "
                "answered (owning nothing cannot be certified for an unknown person)"
            )
        if body is None:
            raise NotFound(f"no curated {endpoint} record for this key")
        if not principal.full_records:
            body = answers.masked(endpoint, body)
        return Answer(body, record["id"])

    def search_audit(
        self, principal: Principal, purpose: str, raw_id_number: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Audit records (newest first), of lookups of one ID number when it is given."""
        key = raw_id_number.strip() if raw_id_number else ""
        if not principal.may("audit_search"):
            self.audit.record(principal, "audit_search", purpose, key, "forbidden")
            raise Forbidden(f"role {principal.role} may not search the audit trail")
        number = ""
        if raw_id_number:
            try:
                number = person_key(raw_id_number, self.today())
            except MalformedKey as e:
                self.audit.record(principal, "audit_search", purpose, key, f"malformed:{e.code}")
                raise
        self.audit.record(principal, "audit_search", purpose, number, "found")
        wanted = self.audit.key_hash(number) if number else None
        found: list[dict[str, Any]] = []
        for sink in self.audit.sinks:
            records = getattr(sink, "records", None)
            if records is None:
                continue
            for rec in records():
                if wanted is None or rec.get("key_hmac") == wanted:
                    found.append(rec)
        found.sort(key=lambda r: str(r.get("at")), reverse=True)
        return found[:limit]
