"""The lookup HTTP API (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``, served from
this process with no CDN: the page works offline).

Looked-up numbers travel in the JSON body of a POST, never in the URL, so no access log or
proxy records them. Every call needs ``X-API-Key``; every lookup names its ``matter`` (事项,
``dags/matters.yaml``) and ``case_no`` (办件编号), and is answered with that matter's data
items only; a matter outside the key's grants is 403 ``MATTER_NOT_GRANTED``.

``RequestGate`` (pure ASGI, outermost) decides before the app reads a byte of the body: a
client address locked out after failed keys gets 429, a missing or unknown key 401 (logged and
audited), a key over its rate or daily quota 429 with ``Retry-After``, a body over the cap 413.
A key's burst of not-found answers raises an alert (``datacloud.lookup.limits``).

Run: ``python -m datacloud.lookup.api --host 127.0.0.1 --port 8080 [--workers N]`` (or
``datacloud lookup serve``) with ``DATACLOUD_API_KEYS`` and ``DATACLOUD_AUDIT_KEY`` set. With
``--workers N`` uvicorn runs N processes on one socket, each with its own store (the paged
files and the page cache are shared) and its own audit group commit (one chain: the flock).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from datacloud import problem_disputes
from datacloud.lookup.api_docs import docs_page
from datacloud.lookup.audit import AuditLog, AuditUnavailable, FileSink, audit_key_from_env
from datacloud.lookup.auth import ApiKeys, Principal
from datacloud.lookup.fastpath import LookupFastPath
from datacloud.lookup.gate import UNAUTHORISED_MESSAGE, RequestGate, audit_event
from datacloud.lookup.keys import MAX_KEY_CHARS, MalformedKey
from datacloud.lookup.limits import LookupLimiter, LookupLimits
from datacloud.lookup.proof_routes import proof_router
from datacloud.lookup.proofs import KEYS_ENV as PROOF_KEYS_ENV
from datacloud.lookup.proofs import LiveKeyring
from datacloud.lookup.responses import error_response
from datacloud.lookup.service import (
    BLANK_PURPOSE,
    Forbidden,
    LookupService,
    MatterNotGranted,
    NotFound,
    PersonUnknown,
    ProofSigner,
    ProofUnavailable,
    is_blank,
)
from datacloud.lookup.store import POLL_SECONDS, CuratedStore, NoCuratedData
from datacloud.lookup.tracker import Tracker, department_names
from datacloud.lookup.tracker_routes import tracker_router
from datacloud.matters import (
    CASE_NO_PATTERN,
    CASE_NO_PERSONAL,
    CODE_PATTERN,
    case_no_holds_personal_data,
    load_matters,
)
from datacloud.paths import StorageRoot, departments_dir
from datacloud.problem_routes import problem_router

log = logging.getLogger(__name__)
KEYS_ENV = "DATACLOUD_API_KEYS"
POLL_ENV = "DATACLOUD_LOOKUP_POLL_SECONDS"  # how workers started by uvicorn get --poll-seconds


# --- request and response models -----------------------------------------------------------------


def _purpose(value: str) -> str:
    if is_blank(value):  # the service's own test, so no purpose it refuses gets this far
        raise ValueError(BLANK_PURPOSE)
    return value


Purpose = Annotated[str, AfterValidator(_purpose)]


def _case_no(value: str) -> str:
    if case_no_holds_personal_data(value):
        raise ValueError(CASE_NO_PERSONAL)
    return value


CaseNo = Annotated[str, AfterValidator(_case_no)]


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matter: str = Field(
        pattern=CODE_PATTERN,
        max_length=40,
        description="the matter (事项) the lookup serves, a code of the matters catalogue "
        "(e.g. gjj_withdrawal); it must be granted to the key and handled by its department; "
        "the answer holds only the matter's data items",
    )
    case_no: CaseNo = Field(
        pattern=CASE_NO_PATTERN,
        max_length=64,
        description="the case number (办件编号) the lookup serves: 1-64 of A-Z a-z 0-9 - _ / "
        "(audited; one holding an ID or mobile number is refused)",
    )
    purpose: Purpose | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"\S",
        description="an optional note (audited, ID and phone numbers masked); not blank",
    )
    as_of: date | None = Field(
        None, description="answer from the curated data published on or before this date"
    )
    proof: bool = Field(
        False,
        description="also return the answer as a signed proof (电子证明, compact JWS) in `proof`",
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
    retry_after: int | None = Field(None, description="seconds until a 429's limit lifts")
    person_known: bool | None = Field(
        None,
        description="false with PERSON_UNKNOWN: the household register does not know the person",
    )


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
    proof: str | None = Field(
        None, description="the signed proof (compact JWS), when the lookup asked for one"
    )


class DisputeShown(BaseModel):
    field: str = Field(description="the contested field (e.g. name)")
    since: str = Field(description="since when (ISO date): the dispute's day, or first seen")
    status: Literal["disputed", "open"] = Field(
        description="disputed (a department's 有异议) or open (an open cross-department finding)"
    )
    table: str = Field(description="where the problem is tracked (consistency: a finding)")


class _Contested(_Answer):
    disputed: bool = Field(
        False,
        description="an open or disputed cross-department finding questions a fact about the "
        "person (docs/problems.md, Responding): check before refusing on it",
    )
    disputes: list[DisputeShown] = Field(
        default_factory=list, description="the contested facts (no personal data)"
    )


class PersonAnswer(_Contested):
    """A part of the answer is present only when the matter has a data item that reads it."""

    id_number: str
    fields: dict[str, GoldenField] | None = None
    property_rights: list[dict[str, Any]] | None = None
    housing_fund_accounts: list[dict[str, Any]] | None = None
    marriages: list[dict[str, Any]] | None = None
    enterprise_roles: list[dict[str, Any]] | None = None
    curated: dict[str, CuratedVersion]


class EnterpriseAnswer(_Answer):
    """A part of the answer is present only when the matter has a data item that reads it."""

    key: dict[str, str]
    record: dict[str, Any] | None = None
    legal_representative: dict[str, Any] | None = None
    shareholders: list[dict[str, Any]] | None = None
    curated: dict[str, CuratedVersion]


class PropertyStatus(_Contested):
    id_number: str
    person_known: bool = Field(
        description="the household register knows the person; false only beside "
        "owns_property true (a person it does not know and who owns nothing here is 404 "
        "PERSON_UNKNOWN, never owns_property false)"
    )
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
        (
            403,
            "the key's role may not call this endpoint (FORBIDDEN), or the matter is not "
            "granted to the key, its department does not handle it, or it reads nothing this "
            "lookup answers (MATTER_NOT_GRANTED)",
        ),
        (
            404,
            "no curated record for the key (NOT_FOUND), no data as old as as_of "
            "(NO_CURATED_DATA), or a property status of a person the household register does "
            "not know (PERSON_UNKNOWN: no answer, never owns_property false)",
        ),
        (413, "the body is larger than the cap (BODY_TOO_LARGE)"),
        (422, "malformed key (the rule is named) or request"),
        (
            429,
            "the key's rate (RATE_LIMITED) or daily quota (QUOTA_EXCEEDED) is spent, or the "
            "client address is locked out after failed keys (LOCKED_OUT); see Retry-After",
        ),
        (
            503,
            "the audit record could not be written: nothing is answered (AUDIT_UNAVAILABLE); "
            "a proof was asked for and no signer is configured (PROOF_UNAVAILABLE)",
        ),
    )
}


# REQUEST_SCHEMA in Chinese, by pydantic's error type (the input is never repeated)
_SCHEMA_ZH = {
    "missing": "缺少必填字段 {field}。",
    "extra_forbidden": "请求中有接口不接受的字段 {field}。",
    "string_too_long": "字段 {field} 过长。",
    "string_too_short": "字段 {field} 不能为空。",
    "string_pattern_mismatch": "字段 {field} 的格式不符合要求（不能为空白）。",
    "value_error": "字段 {field} 的值不符合要求（例如查询目的不能为空白）。",
    "string_type": "字段 {field} 应为文本。",
    "date_from_datetime_parsing": "字段 {field} 应为日期，格式 YYYY-MM-DD。",
    "date_parsing": "字段 {field} 应为日期，格式 YYYY-MM-DD。",
    "date_type": "字段 {field} 应为日期，格式 YYYY-MM-DD。",
    "int_parsing": "字段 {field} 应为整数。",
    "int_type": "字段 {field} 应为整数。",
    "greater_than_equal": "字段 {field} 的值过小。",
    "less_than_equal": "字段 {field} 的值过大。",
    "model_attributes_type": "请求体应为 JSON 对象。",
    "dict_type": "请求体应为 JSON 对象。",
    "json_invalid": "请求体不是有效的 JSON。",
}


def _schema_zh(error_type: str, field: str | None) -> str:
    where = field or "请求体"
    text = _SCHEMA_ZH.get(error_type, "字段 {field} 不符合接口要求。")
    return text.format(field=where)


class _Unauthorised(Exception):
    pass


# --- the app -------------------------------------------------------------------------------------

_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False)


def _principal(request: Request, key: Annotated[str | None, Depends(_API_KEY)]) -> Principal:
    found = getattr(request.state, "principal", None)  # set by RequestGate
    if found is None:
        found = request.app.state.keys.authenticate(key)
    if found is None:
        raise _Unauthorised()
    return found


Who = Annotated[Principal, Depends(_principal)]


def _no_keys() -> dict[str, Any]:
    """The published proof keys of a server without a signer: none."""
    return {"keys": []}


def settle_heap() -> None:
    """Collect once, then move every object alive now (the imported modules, the app, the
    snapshot's index) out of the cyclic collector's sight (``gc.freeze``).

    A full collection walks every tracked object: about 120 thousand once FastAPI, pydantic
    and the app are in, some 30 ms on this 2-core machine, during which the
    worker's event loop answers nothing. Those pauses came every few ten thousand requests
    and set the p99 under load (docs/lookup.md#measured); frozen, a full collection walks only
    what the requests left alive since."""
    gc.collect()
    gc.freeze()


def create_app(
    service: LookupService,
    keys: ApiKeys,
    store: CuratedStore | None = None,
    limits: LookupLimits | None = None,
    problems_root: StorageRoot | None = None,
    lean: bool = True,
) -> FastAPI:
    """The API over ``service``; when ``store`` is given it is started and stopped with the app.
    ``limits`` default to the keys file's (``keys.limits``). ``problems_root`` (default the
    store's root) serves the departments' problem-response uploads (``problem_routes``).
    ``lean`` (default): the lookup routes' well-formed queries are answered by
    ``datacloud.lookup.fastpath`` (the same answers and refusals, less CPU); False: every
    request goes through the FastAPI routes (the tests compare the two)."""
    limiter = LookupLimiter(limits or keys.limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if store is not None:
            store.start()
        settle_heap()
        yield
        if store is not None:
            store.stop()

    app = FastAPI(
        title="datacloud lookups",
        version="1",
        description="Person, enterprise and property-status lookups over the curated tables.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's Swagger UI loads its scripts from a CDN: ours below does not
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.keys = keys
    app.state.limiter = limiter
    # the lookup routes' well-formed queries answered lean (datacloud.lookup.fastpath), inside
    # the gate (added last: outermost), with this app's exception handlers for its refusals
    if lean:
        app.add_middleware(
            LookupFastPath,
            service=service,
            models={
                "/v1/lookup/person": PersonAnswer,
                "/v1/lookup/enterprise": EnterpriseAnswer,
                "/v1/lookup/property-status": PropertyStatus,
            },
            handlers=lambda: app.exception_handlers,
        )
    app.add_middleware(RequestGate, keys=keys, limiter=limiter, audit=service.audit)

    @app.exception_handler(_Unauthorised)
    async def unauthorised(request: Request, exc: _Unauthorised) -> JSONResponse:
        en, zh = UNAUTHORISED_MESSAGE
        return error_response(401, "UNAUTHORISED", en, message_zh=zh)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        zh = _schema_zh(str(first.get("type", "")), field)
        # no input echoed
        return error_response(
            422, "REQUEST_SCHEMA", str(first.get("msg")), message_zh=zh, field=field
        )

    @app.exception_handler(StarletteHTTPException)
    async def httperror_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        rule = "BAD_REQUEST" if exc.status_code == 400 else f"HTTP_{exc.status_code}"
        return error_response(exc.status_code, rule, str(exc.detail))

    @app.exception_handler(MalformedKey)
    async def malformed(request: Request, exc: MalformedKey) -> JSONResponse:
        return error_response(
            422, exc.code, exc.message_en, message_zh=exc.message_zh, field=exc.field
        )

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        if isinstance(exc, MatterNotGranted):
            return error_response(
                403, "MATTER_NOT_GRANTED", str(exc), message_zh=exc.message_zh, field="matter"
            )
        return error_response(403, "FORBIDDEN", str(exc))

    @app.exception_handler(ProofUnavailable)
    async def no_signer(request: Request, exc: ProofUnavailable) -> JSONResponse:
        return error_response(
            503,
            "PROOF_UNAVAILABLE",
            str(exc),
            message_zh="平台未配置证明签名密钥，无法出具电子证明。",
        )

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        who: Principal | None = getattr(request.state, "principal", None)
        if who is not None and limiter.not_found(who.key_id):
            alert = limiter.config.not_found_alert
            log.warning(
                "lookup: ALERT key %s (%s): %d not-found answers within %d s (enumeration?)",
                who.key_id,
                who.role,
                alert.count,
                alert.per_seconds,
            )
            detail = {
                "key_id": who.key_id,
                "not_found": alert.count,
                "per_seconds": alert.per_seconds,
                "path": request.url.path,
            }
            await audit_event(service.audit, "alert_not_found_burst", who, detail)
        if isinstance(exc, PersonUnknown):
            return error_response(
                404,
                "PERSON_UNKNOWN",
                str(exc),
                message_zh=exc.message_zh,
                field="id_number",
                person_known=False,
            )
        return error_response(404, "NOT_FOUND", str(exc))

    @app.exception_handler(NoCuratedData)
    async def no_data(request: Request, exc: NoCuratedData) -> JSONResponse:
        return error_response(404, "NO_CURATED_DATA", str(exc))

    @app.exception_handler(AuditUnavailable)
    async def audit_down(request: Request, exc: AuditUnavailable) -> JSONResponse:
        return error_response(503, "AUDIT_UNAVAILABLE", str(exc))

    def answer(who: Principal, endpoint: str, key: str, q: _Query) -> dict[str, Any]:
        out = service.lookup(
            who, endpoint, key, q.matter, q.case_no, q.purpose or "", q.as_of, q.proof
        )
        return {**out.body, "audit_id": out.audit_id}

    # a part the matter does not read is left out of the answer (not sent as null)
    @app.post(
        "/v1/lookup/person",
        response_model=PersonAnswer,
        responses=ERRORS,
        response_model_exclude_unset=True,
    )
    def person(q: PersonQuery, who: Who) -> dict[str, Any]:
        """A person's golden record (each field with source and as-of) and linked facts."""
        return answer(who, "person", q.id_number, q)

    @app.post(
        "/v1/lookup/enterprise",
        response_model=EnterpriseAnswer,
        responses=ERRORS,
        response_model_exclude_unset=True,
    )
    def enterprise(q: EnterpriseQuery, who: Who) -> dict[str, Any]:
        """An enterprise's golden record, legal representative and shareholders."""
        return answer(who, "enterprise", q.code, q)

    @app.post(
        "/v1/lookup/property-status",
        response_model=PropertyStatus,
        responses=ERRORS,
        response_model_exclude_unset=True,
    )
    def property_status(q: PersonQuery, who: Who) -> dict[str, Any]:
        """Does the person hold a current (现势) property right in the province?"""
        return answer(who, "property_status", q.id_number, q)

    @app.post("/v1/audit/search", response_model=AuditRecords, responses=ERRORS)
    def audit_search(q: AuditQuery, who: Who) -> dict[str, Any]:
        """Audit records, newest first, of lookups of one ID number (auditors only)."""
        return {"records": service.search_audit(who, q.purpose, q.id_number, q.limit)}

    # proofs (verify, the published keys) and the citizen's data tracker (docs/proofs.md)
    published = getattr(service.signer, "jwks", None)
    app.include_router(
        proof_router(published if callable(published) else _no_keys, _principal, ERRORS)
    )
    tracker = Tracker(
        service.audit, service.catalogue, department_names(departments_dir()), service.today
    )
    app.include_router(tracker_router(tracker, _principal, ERRORS))
    # the departments' returned feedback workbooks (docs/problems.md, Responding)
    uploads_root = problems_root or (store.root if store is not None else None)
    if uploads_root is not None:
        app.include_router(problem_router(uploads_root, _principal, service.audit, ERRORS))

    @app.get(
        "/healthz",
        responses={503: {"description": "degraded: the audit trail cannot be written"}},
    )
    def healthz() -> JSONResponse:
        """Liveness, whether the audit trail can be written (else 503, ``degraded`` and the
        reason: no lookup would be answered), the curated versions being served."""
        snapshot = store.serving() if store is not None else None
        body: dict[str, Any] = {"status": "ok", "curated_versions": {}, "snapshot_bytes": 0}
        if snapshot is not None:
            body["curated_versions"] = {k: v.version for k, v in snapshot.versions.items()}
            body["snapshot_bytes"] = snapshot.nbytes
        reason = service.audit.check_writable()
        if reason is not None:
            body.update(status="degraded", reason=f"audit trail: {reason}")
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """The API docs, rendered here from the OpenAPI spec: no CDN, works offline."""
        if getattr(app.state, "docs_html", None) is None:
            app.state.docs_html = docs_page(app.openapi())
        return HTMLResponse(
            app.state.docs_html,
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )

    return app


def build(
    root: StorageRoot | None = None,
    keys_file: Path | None = None,
    poll_seconds: float = POLL_SECONDS,
    signer: ProofSigner | None = None,
):
    """Service, keys and store from the environment (raises on a missing audit key or keys
    file, a malformed matters catalogue, or a key granted a matter the catalogue lacks)."""
    root = root or StorageRoot.from_env()
    path = keys_file or (Path(os.environ[KEYS_ENV]) if os.environ.get(KEYS_ENV) else None)
    if path is None:
        raise RuntimeError(f"set {KEYS_ENV} to the API keys YAML (see docs/lookup.md)")
    catalogue = load_matters()
    departments = [p.stem for p in departments_dir().glob("*.yaml")]
    departments += list(catalogue.requesting_departments)
    keys = ApiKeys.from_file(path, list(catalogue.matters), departments)
    key, dev = audit_key_from_env()
    store = CuratedStore(root, poll_seconds=poll_seconds)
    audit = AuditLog([FileSink(root.audit())], key, dev)
    if signer is None and os.environ.get(PROOF_KEYS_ENV):  # the proof keyring (docs/proofs.md)
        signer = LiveKeyring.from_env()
    service = LookupService(
        store,
        audit,
        catalogue=catalogue,
        signer=signer,
        disputes=problem_disputes.index_for(root).disputes_for,
    )
    return service, keys, store


def app_from_env() -> FastAPI:
    """The app of one worker process (uvicorn's factory with ``--workers``): keys file, audit
    key, storage and poll interval from the environment."""
    service, keys, store = build(poll_seconds=float(os.environ.get(POLL_ENV, POLL_SECONDS)))
    return create_app(service, keys, store)


def serve(
    host: str,
    port: int,
    keys_file: Path | None,
    poll_seconds: float = POLL_SECONDS,
    workers: int = 1,
) -> None:
    import uvicorn

    service, keys, store = build(keys_file=keys_file, poll_seconds=poll_seconds)
    options: dict[str, Any] = dict(host=host, port=port, access_log=False, log_level="info")
    if workers <= 1:
        uvicorn.run(create_app(service, keys, store), **options)
        return
    # configuration checked above, in this process; each worker builds its own app from it
    if keys.limits.storage_uri.startswith("memory://"):
        log.warning(
            "lookup: %d workers with limits storage memory://: every worker counts rates, "
            "quotas and lockouts on its own (set limits.storage_uri to redis://… to share)",
            workers,
        )
    if keys_file is not None:
        os.environ[KEYS_ENV] = str(keys_file)
    os.environ[POLL_ENV] = str(poll_seconds)
    store.refresh()  # build the served version's files once, before the workers start
    uvicorn.run("datacloud.lookup.api:app_from_env", factory=True, workers=workers, **options)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m datacloud.lookup.api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--keys", type=Path, default=None, help=f"keys YAML (default ${KEYS_ENV})")
    parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS)
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes on one socket (default 1)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        serve(args.host, args.port, args.keys, args.poll_seconds, args.workers)
    except Exception as e:  # configuration problems: one line, no traceback
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
