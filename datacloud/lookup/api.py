"""The lookup HTTP API (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``).

Looked-up numbers travel in the JSON body of a POST, never in the URL, so no access log or
proxy records them. Every call needs ``X-API-Key``; every lookup a ``purpose``.

Run: ``python -m datacloud.lookup.api --host 127.0.0.1 --port 8080`` (or ``datacloud lookup
serve``) with ``DATACLOUD_API_KEYS`` and ``DATACLOUD_AUDIT_KEY`` set.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from datacloud.lookup.audit import AuditLog, AuditUnavailable, FileSink, audit_key_from_env
from datacloud.lookup.auth import ApiKeys, Principal
from datacloud.lookup.keys import MAX_KEY_CHARS, MalformedKey
from datacloud.lookup.service import BLANK_PURPOSE, Forbidden, LookupService, NotFound, is_blank
from datacloud.lookup.store import CuratedStore, NoCuratedData
from datacloud.paths import StorageRoot

log = logging.getLogger(__name__)
KEYS_ENV = "DATACLOUD_API_KEYS"


# --- request and response models -----------------------------------------------------------------


def _purpose(value: str) -> str:
    if is_blank(value):  # the service's own test, so no purpose it refuses gets this far
        raise ValueError(BLANK_PURPOSE)
    return value


Purpose = Annotated[str, AfterValidator(_purpose)]


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purpose: Purpose = Field(
        min_length=1,
        max_length=200,
        pattern=r"\S",
        description="why the number is looked up (audited); not blank",
    )
    as_of: date | None = Field(
        None, description="answer from the curated data published on or before this date"
    )


class PersonQuery(_Query):
    id_number: str = Field(
        max_length=MAX_KEY_CHARS,
        description="公民身份号码: 18 characters, 15-digit legacy, full-width digits or x accepted",
    )


class EnterpriseQuery(_Query):
    code: str = Field(
        max_length=MAX_KEY_CHARS,
        description="统一社会信用代码, or a legacy 15-digit 注册号 or 9-character 组织机构代码",
    )


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purpose: Purpose = Field(min_length=1, max_length=200, pattern=r"\S")
    id_number: str | None = Field(None, max_length=MAX_KEY_CHARS)
    limit: int = Field(100, ge=1, le=1000)


class ErrorBody(BaseModel):
    rule: str = Field(description="rule code, such as ID_CHECK_DIGIT, UNAUTHORISED, NOT_FOUND")
    message: str
    message_zh: str | None = None
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class GoldenField(BaseModel):
    value: Any
    source: str | None
    as_of: str | None


class CuratedVersion(BaseModel):
    version: int | None
    as_of: str | None


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")
    audit_id: str


class PersonAnswer(_Answer):
    id_number: str
    fields: dict[str, GoldenField]
    property_rights: list[dict[str, Any]]
    housing_fund_accounts: list[dict[str, Any]]
    marriages: list[dict[str, Any]]
    enterprise_roles: list[dict[str, Any]]
    curated: dict[str, CuratedVersion]


class EnterpriseAnswer(_Answer):
    key: dict[str, str]
    record: dict[str, Any]
    legal_representative: dict[str, Any] | None
    shareholders: list[dict[str, Any]]
    curated: dict[str, CuratedVersion]


class PropertyStatus(_Answer):
    id_number: str
    owns_property: bool
    property_count: int
    as_of: str | None
    sources: list[str]
    curated: dict[str, CuratedVersion]


class AuditRecords(BaseModel):
    records: list[dict[str, Any]]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "the body is not JSON"),
        (401, "no or unknown X-API-Key"),
        (403, "the key's role may not call this endpoint"),
        (404, "no curated record for the key, or no data as old as as_of"),
        (422, "malformed key (the rule is named) or request"),
        (503, "the audit record could not be written: nothing is answered"),
    )
}


def _error(status: int, rule: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"rule": rule, "message": message, **extra}},
        headers={"WWW-Authenticate": "APIKey"} if status == 401 else None,
    )


class _Unauthorised(Exception):
    pass


# --- the app -------------------------------------------------------------------------------------

_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False)


def _principal(request: Request, key: Annotated[str | None, Depends(_API_KEY)]) -> Principal:
    found = request.app.state.keys.authenticate(key)
    if found is None:
        raise _Unauthorised()
    return found


Who = Annotated[Principal, Depends(_principal)]


def create_app(service: LookupService, keys: ApiKeys, store: CuratedStore | None = None) -> FastAPI:
    """The API over ``service``; when ``store`` is given it is started and stopped with the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if store is not None:
            store.start()
        yield
        if store is not None:
            store.stop()

    app = FastAPI(
        title="datacloud lookups",
        version="1",
        description="Person, enterprise and property-status lookups over the curated tables.",
        lifespan=lifespan,
    )
    app.state.keys = keys

    @app.exception_handler(_Unauthorised)
    async def unauthorised(request: Request, exc: _Unauthorised) -> JSONResponse:
        return _error(401, "UNAUTHORISED", "a valid X-API-Key header is required")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return _error(422, "REQUEST_SCHEMA", str(first.get("msg")), field=field)  # no input echoed

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        rule = "BAD_REQUEST" if exc.status_code == 400 else f"HTTP_{exc.status_code}"
        return _error(exc.status_code, rule, str(exc.detail))

    @app.exception_handler(MalformedKey)
    async def malformed(request: Request, exc: MalformedKey) -> JSONResponse:
        return _error(422, exc.code, exc.message_en, message_zh=exc.message_zh, field=exc.field)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return _error(403, "FORBIDDEN", str(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, "NOT_FOUND", str(exc))

    @app.exception_handler(NoCuratedData)
    async def no_data(request: Request, exc: NoCuratedData) -> JSONResponse:
        return _error(404, "NO_CURATED_DATA", str(exc))

    @app.exception_handler(AuditUnavailable)
    async def audit_down(request: Request, exc: AuditUnavailable) -> JSONResponse:
        return _error(503, "AUDIT_UNAVAILABLE", str(exc))

    def answer(who: Principal, endpoint: str, key: str, q: _Query) -> dict[str, Any]:
        out = service.lookup(who, endpoint, key, q.purpose, q.as_of)
        return {**out.body, "audit_id": out.audit_id}

    @app.post("/v1/lookup/person", response_model=PersonAnswer, responses=ERRORS)
    def person(q: PersonQuery, who: Who) -> dict[str, Any]:
        """A person's golden record (each field with source and as-of) and linked facts."""
        return answer(who, "person", q.id_number, q)

    @app.post("/v1/lookup/enterprise", response_model=EnterpriseAnswer, responses=ERRORS)
    def enterprise(q: EnterpriseQuery, who: Who) -> dict[str, Any]:
        """An enterprise's golden record, legal representative and shareholders."""
        return answer(who, "enterprise", q.code, q)

    @app.post("/v1/lookup/property-status", response_model=PropertyStatus, responses=ERRORS)
    def property_status(q: PersonQuery, who: Who) -> dict[str, Any]:
        """Does the person hold a current (现势) property right in the province?"""
        return answer(who, "property_status", q.id_number, q)

    @app.post("/v1/audit/search", response_model=AuditRecords, responses=ERRORS)
    def audit_search(q: AuditQuery, who: Who) -> dict[str, Any]:
        """Audit records, newest first, of lookups of one ID number (auditors only)."""
        return {"records": service.search_audit(who, q.purpose, q.id_number, q.limit)}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness and the curated versions being served (no personal data)."""
        snapshot = store.serving() if store is not None else None
        if snapshot is None:
            return {"status": "ok", "curated_versions": {}, "snapshot_bytes": 0}
        versions = {k: v.version for k, v in snapshot.versions.items()}
        return {"status": "ok", "curated_versions": versions, "snapshot_bytes": snapshot.nbytes}

    return app


def build(
    root: StorageRoot | None = None, keys_file: Path | None = None, poll_seconds: float = 5.0
):
    """Service, keys and store from the environment (raises on a missing audit key or keys file)."""
    root = root or StorageRoot.from_env()
    path = keys_file or (Path(os.environ[KEYS_ENV]) if os.environ.get(KEYS_ENV) else None)
    if path is None:
        raise RuntimeError(f"set {KEYS_ENV} to the API keys YAML (see docs/lookup.md)")
    keys = ApiKeys.from_file(path)
    key, dev = audit_key_from_env()
    store = CuratedStore(root, poll_seconds=poll_seconds)
    service = LookupService(store, AuditLog([FileSink(root.audit())], key, dev))
    return service, keys, store


def serve(host: str, port: int, keys_file: Path | None, poll_seconds: float) -> None:
    import uvicorn

    service, keys, store = build(keys_file=keys_file, poll_seconds=poll_seconds)
    app = create_app(service, keys, store)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m datacloud.lookup.api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--keys", type=Path, default=None, help=f"keys YAML (default ${KEYS_ENV})")
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        serve(args.host, args.port, args.keys, args.poll_seconds)
    except Exception as e:  # configuration problems: one line, no traceback
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
