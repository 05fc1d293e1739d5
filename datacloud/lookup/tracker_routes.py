"""The data tracker's HTTP route: ``POST /v1/tracker`` (the ID number in the body, never in the
URL). An auditor asks about anyone; a citizen key only about its own number (403 otherwise,
audited). docs/proofs.md#tracker
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from datacloud.lookup.auth import Principal
from datacloud.lookup.keys import MAX_KEY_CHARS
from datacloud.lookup.tracker import MAX_ENTRIES, Tracker


class TrackerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id_number: str = Field(
        max_length=MAX_KEY_CHARS, description="公民身份号码 of the person whose lookups are listed"
    )
    limit: int = Field(100, ge=1, le=MAX_ENTRIES, description="at most this many, newest first")


class TrackerEntry(BaseModel):
    at: str | None = Field(description="when (UTC)")
    department: str | None = Field(description="the requesting department's code")
    department_name: str | None
    matter: str | None = Field(description="the matter (事项) code the lookup served")
    matter_name: str | None
    case_no: str | None = Field(description="办件编号")
    endpoint: str
    endpoint_name: str | None
    outcome: str
    outcome_name: str


class TrackerAnswer(BaseModel):
    entries: list[TrackerEntry]
    total: int = Field(description="entries found (before limit)")
    audit_id: str = Field(description="the audit record of this tracker request")


def tracker_router(
    tracker: Tracker,
    who: Callable[..., Principal],
    errors: dict[int | str, dict[str, Any]] | None = None,
) -> APIRouter:
    """The route over ``tracker``; ``who`` is the app's principal dependency, ``errors`` its
    documented error bodies."""
    # no ``from __future__ import annotations`` in this module: FastAPI reads the annotation
    # of the route's parameter, and as a string it could not name the local ``who``
    Who = Annotated[Principal, Depends(who)]
    router = APIRouter(tags=["tracker"])

    @router.post(
        "/v1/tracker",
        response_model=TrackerAnswer,
        responses={
            k: v for k, v in (errors or {}).items() if k in (400, 401, 403, 413, 422, 429, 503)
        },
    )
    def track(q: TrackerQuery, principal: Who) -> dict[str, Any]:
        """Who looked up this person's data: when, which department, for which matter and case
        number, with what outcome (never the clerk's name). Auditors: any ID number; a citizen
        key: its own only."""
        found = tracker.track(principal, q.id_number, q.limit)
        return {"entries": found.entries, "total": found.total, "audit_id": found.audit_id}

    return router
