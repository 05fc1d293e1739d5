"""The lookups as one service used by the HTTP API and the CLI.

Order of one lookup: role check, the matter check (the key holds the matter, its department
handles it, the matter has an item this lookup answers; else ``MatterNotGranted``), key
normalisation, the answer from the curated view, the audit record (written and fsynced, with
the matter, the case number and the requesting department), then the answer restricted to the
matter's items (``answers.restrict``), masked for a clerk, and signed as a proof on request
(``ProofSigner``, when the service has one). A refused, malformed or unanswerable lookup is
audited too; when the audit write fails, ``AuditUnavailable`` propagates and nothing is
answered.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from datacloud import problem_disputes
from datacloud.lookup import answers
from datacloud.lookup.answers import CuratedView
from datacloud.lookup.audit import AuditLog
from datacloud.lookup.auth import Principal
from datacloud.lookup.keys import MalformedKey, enterprise_key, person_key
from datacloud.lookup.store import NoCuratedData
from datacloud.matters import (
    CASE_NO_PATTERN,
    CASE_NO_PERSONAL,
    CODE_PATTERN,
    MatterCatalogue,
    case_no_holds_personal_data,
    load_matters,
)
from datacloud.problem_disputes import Dispute

ENDPOINTS = ("person", "enterprise", "property_status")


BLANK_PURPOSE = "purpose: a lookup needs a purpose"
BAD_CASE_NO = "case_no: 1 to 64 characters of A-Z a-z 0-9 - _ /"
BAD_MATTER = "matter: a matter code of the catalogue (lower-case letters, digits, _)"


def is_blank(purpose: str) -> bool:
    """No purpose: empty or only whitespace, as Python sees it (``str.strip``, which also takes
    the control characters U+001C-U+001F that a regex ``\\S`` lets through)."""
    return not purpose.strip()


class Forbidden(PermissionError):
    """The principal's role may not call this endpoint."""


class MatterNotGranted(Forbidden):
    """The lookup is outside the key's matters: the matter is not granted to the key, its
    department does not handle it, or it reads nothing this lookup answers (HTTP 403
    ``MATTER_NOT_GRANTED``, audited with outcome ``matter_not_granted``)."""

    message_zh = (
        "该查询不在本密钥获授权的事项范围内"
        "（事项未授权、本部门不办理该事项，或该事项不含此类数据）。"
    )


class ProofUnavailable(RuntimeError):
    """A proof was asked for and the service has no signer: nothing is looked up."""


class ProofSigner(Protocol):
    """Signs a proof's claims (``datacloud.lookup.proofs``): a compact JWS."""

    def sign(self, claims: dict[str, Any]) -> str: ...


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
        self,
        source: CuratedSource,
        audit: AuditLog,
        today: Callable[[], date] = date.today,
        catalogue: MatterCatalogue | None = None,
        signer: ProofSigner | None = None,
        disputes: Callable[[str], list[Dispute]] | None = None,
    ) -> None:
        """``catalogue``: the matters catalogue (default ``load_matters()``); ``signer``
        signs proofs (none: a lookup asking for a proof is refused, ``ProofUnavailable``);
        ``disputes``: a person's contested facts (``problem_disputes.DisputeIndex``): a person
        or property-status answer then carries ``disputed`` and ``disputes``."""
        self.source = source
        self.audit = audit
        self.today = today
        self.catalogue = catalogue if catalogue is not None else load_matters()
        self.signer = signer
        self.disputes = disputes

    def matter_refusal(self, principal: Principal, endpoint: str, matter: str) -> str | None:
        """Why ``principal`` may not look up ``endpoint`` for ``matter`` (None: it may)."""
        found = self.catalogue.matters.get(matter)
        if found is None:
            return f"matter {matter!r} is not in the matters catalogue"
        if matter not in principal.matters:
            return f"matter {matter!r} is not granted to this key"
        if principal.department is not None and principal.department not in found.departments:
            return f"department {principal.department!r} does not handle matter {matter!r}"
        if not self.catalogue.items_for(matter, endpoint):
            return f"matter {matter!r} reads no data item of the {endpoint} lookup"
        return None

    def _audit_key(self, endpoint: str, raw_key: str) -> str:
        """What a refused lookup's ``key_hmac`` is of: the normalised key when the rules take
        it, else the key as typed (stripped)."""
        try:
            if endpoint == "enterprise":
                return enterprise_key(raw_key).value
            return person_key(raw_key, self.today())
        except MalformedKey:
            return raw_key.strip()

    def lookup(
        self,
        principal: Principal,
        endpoint: str,
        raw_key: str,
        matter: str,
        case_no: str,
        purpose: str = "",
        as_of: date | None = None,
        proof: bool = False,
    ) -> Answer:
        """Answer one lookup (``person``, ``enterprise`` or ``property_status``) for
        ``matter`` and its case number ``case_no`` (办件编号); ``purpose`` is an optional note.
        With ``proof`` the answer carries ``proof``, the signed claims."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown lookup endpoint {endpoint!r}")
        if not re.fullmatch(CODE_PATTERN, matter):
            raise ValueError(BAD_MATTER)
        if not re.fullmatch(CASE_NO_PATTERN, case_no):
            raise ValueError(BAD_CASE_NO)
        if case_no_holds_personal_data(case_no):
            raise ValueError(CASE_NO_PERSONAL)
        if proof and self.signer is None:
            raise ProofUnavailable("no proof signer is configured: no proof can be issued")
        ds = as_of.isoformat() if as_of else None

        def audit(number: str, outcome: str) -> dict[str, Any]:
            return self.audit.record(
                principal, endpoint, purpose, number, outcome, ds, matter=matter, case_no=case_no
            )

        if not principal.may(endpoint):
            audit(raw_key.strip(), "forbidden")
            raise Forbidden(f"role {principal.role} may not call {endpoint}")
        refusal = self.matter_refusal(principal, endpoint, matter)
        if refusal is not None:
            # hashed as normalised when it is a valid key, so the person's data tracker finds
            # the refused lookup too (the answer says nothing either way)
            audit(self._audit_key(endpoint, raw_key), "matter_not_granted")
            raise MatterNotGranted(refusal)
        try:
            if endpoint == "enterprise":
                ekey = enterprise_key(raw_key)
                number = ekey.value
            else:
                number = person_key(raw_key, self.today())
        except MalformedKey as e:
            audit(raw_key.strip(), f"malformed:{e.code}")
            raise
        try:
            view = self.source.as_of(ds) if ds else self.source.current()
        except NoCuratedData:
            audit(number, "no_data")
            raise
        if endpoint == "property_status":
            # no property register or household register means no answer, never a false "no"
            when = f" on or before {ds}" if ds else ""
            for table, what in (("property_right", "property"), ("person", "household")):
                if view.version(table) is None:
                    audit(number, "no_data")
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
        record = audit(number, outcome)
        if unknown:
            raise PersonUnknown(
                "the household register does not know this person: no property status is "
                "answered (owning nothing cannot be certified for an unknown person)"
            )
        if body is None:
            raise NotFound(f"no curated {endpoint} record for this key")
        body = answers.restrict(endpoint, body, matter, self.catalogue)
        if not principal.full_records:
            body = answers.masked(endpoint, body)
        if self.disputes is not None and endpoint in ("person", "property_status"):
            # open or disputed cross-department findings about the person (no ID number in
            # them): a service window sees the fact is contested (docs/problems.md)
            # only disputes of fields the matter reads: the answer holds its items only
            readable = set().union(
                *answers.allowed_columns(endpoint, matter, self.catalogue).values()
            )
            found = [d for d in self.disputes(number) if d.field in readable]
            body = {**body, **problem_disputes.flag(found)}
        if proof and self.signer is not None:
            body = {
                **body,
                "proof": self.signer.sign(
                    self.proof_claims(endpoint, body, matter, case_no, record["id"])
                ),
            }
        return Answer(body, record["id"])

    @staticmethod
    def proof_claims(
        endpoint: str, body: dict[str, Any], matter: str, case_no: str, audit_id: str
    ) -> dict[str, Any]:
        """What a proof signs: the answer as returned (the matter's items, masked for a
        clerk), the matter, the case number, the curated versions it is as of, the source
        departments, the audit record's id, and when it was issued (``iat``, Unix seconds)."""
        return {
            "answer": body,
            "matter": matter,
            "case_no": case_no,
            "as_of": body.get("curated", {}),
            "sources": answers.sources(endpoint, body),
            "audit_id": audit_id,
            "iat": int(time.time()),
        }

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
