"""The lean path of the three lookup routes: the same answers as the FastAPI routes at a
fraction of the CPU per request.

``LookupFastPath`` is pure ASGI, inside ``RequestGate`` (which has already checked lockout,
key, rate, quota and body cap, and put the principal in the scope). A ``POST`` to
``/v1/lookup/person``, ``/enterprise`` or ``/property-status`` whose body is a well-formed
query (``application/json``, a JSON object with only the route's fields, each of exactly the
type and within the limits the pydantic models in ``api`` state, the purpose not blank, the
date ``YYYY-MM-DD``) is answered here: one ``json.loads``, the service's lookup on the event
loop with its audit record queued for the group commit (``AuditLog.deferred``: the sink's
flusher thread writes and fsyncs, the answer waits for it; an ``as_of`` or proof lookup, a
source behind a network, or an audit sink that cannot queue runs on a worker thread instead),
the answer validated against the route's response model (``model_validate`` and
``model_dump_json(exclude_unset=True)``, so the shape is the route's) and sent as the same
JSON bytes. What it skips is FastAPI's per-request machinery: dependency resolution,
request model validation with error collection, ``jsonable_encoder``.

Everything else goes to the app unchanged, body included: any body the lean checks do not
accept (a missing or extra field, a wrong type, a too long value, a blank purpose, another
content type, a body that is not JSON) is answered by the FastAPI route, whose pydantic
validation gives the 422 ``REQUEST_SCHEMA`` body as before. An exception of the lookup is
answered by the app's own exception handler for it (404 ``NOT_FOUND`` with the not-found
alert, 403, 422 of a malformed key, 503 ``AUDIT_UNAVAILABLE``, …), so refusals are the same
bytes on both paths. The OpenAPI document still comes from the routes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datacloud.lookup.auth import Principal
from datacloud.lookup.keys import MAX_KEY_CHARS
from datacloud.lookup.service import Answer, LookupService, is_blank
from datacloud.matters import CASE_NO_PATTERN, CODE_PATTERN, case_no_holds_personal_data

_MATTER = re.compile(CODE_PATTERN)
_CASE_NO = re.compile(CASE_NO_PATTERN)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NOT_BLANK = re.compile(r"\S")
# path -> (service endpoint, the key's field)
ROUTES: dict[str, tuple[str, str]] = {
    "/v1/lookup/person": ("person", "id_number"),
    "/v1/lookup/enterprise": ("enterprise", "code"),
    "/v1/lookup/property-status": ("property_status", "id_number"),
}
# the lookups' worker threads (as many as anyio's default pool for the FastAPI routes): a
# lookup waits there for its audit record's group-committed fsync, never on the event loop
_POOL = ThreadPoolExecutor(max_workers=40, thread_name_prefix="lookup")
_OPTIONAL = frozenset({"purpose", "as_of", "proof"})
Handler = Callable[[Request, Exception], Any]


class Query:
    """A lookup body the lean checks accepted."""

    __slots__ = ("as_of", "case_no", "key", "matter", "proof", "purpose")

    def __init__(
        self, key: str, matter: str, case_no: str, purpose: str, as_of: date | None, proof: bool
    ) -> None:
        self.key, self.matter, self.case_no = key, matter, case_no
        self.purpose, self.as_of, self.proof = purpose, as_of, proof


def parse(body: bytes, key_field: str) -> Query | None:
    """The query in ``body`` when it is one the route's model accepts as it stands (no
    coercion); None for anything else: the FastAPI route then validates it and answers."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if type(data) is not dict:
        return None
    if not data.keys() <= {key_field, "matter", "case_no"} | _OPTIONAL:
        return None
    key, matter, case_no = data.get(key_field), data.get("matter"), data.get("case_no")
    if type(key) is not str or len(key) > MAX_KEY_CHARS:
        return None
    if type(matter) is not str or len(matter) > 40 or not _MATTER.fullmatch(matter):
        return None
    if type(case_no) is not str or len(case_no) > 64 or not _CASE_NO.fullmatch(case_no):
        return None
    if case_no_holds_personal_data(case_no):  # refused by the route's model, with its message
        return None
    purpose = data.get("purpose")
    if purpose is not None and (
        type(purpose) is not str
        or not 1 <= len(purpose) <= 200
        or is_blank(purpose)
        or not _NOT_BLANK.search(purpose)
    ):
        return None
    as_of_text = data.get("as_of")
    as_of: date | None = None
    if as_of_text is not None:
        if type(as_of_text) is not str or not _DATE.fullmatch(as_of_text):
            return None
        try:
            as_of = date.fromisoformat(as_of_text)
        except ValueError:
            return None
    proof = data.get("proof", False)
    if type(proof) is not bool:
        return None
    return Query(key, matter, case_no, purpose or "", as_of, proof)


class LookupFastPath:
    """Pure ASGI, inside ``RequestGate``: answers the lookup routes' well-formed queries
    itself, hands everything else to ``app`` (see the module's doc)."""

    def __init__(
        self,
        app: ASGIApp,
        service: LookupService,
        models: dict[str, type[BaseModel]],
        handlers: Callable[[], dict[Any, Handler]],
    ) -> None:
        """``models``: the response model per path; ``handlers``: the app's exception
        handlers (read at the first exception, after the app registered them)."""
        self.app = app
        self.service = service
        self.models = models
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        principal = scope.get("state", {}).get("principal") if route is not None else None
        if route is None or principal is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        message = await receive()  # the gate hands the whole body on in one message
        query = None
        if (
            message["type"] == "http.request"
            and not message.get("more_body", False)
            and _json_content(scope)
        ):
            query = parse(message.get("body", b""), route[1])
        if query is None:
            await self.app(scope, _replay(message, receive), send)
            return
        try:
            out = await self._answer(principal, route[0], query)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response: Response = await handler(Request(scope, receive), exc)
        else:
            model = self.models[scope["path"]]
            answer = model.model_validate({**out.body, "audit_id": out.audit_id})
            # pydantic's serializer writes the bytes JSONResponse would (compact, UTF-8) in
            # one pass instead of model_dump then json.dumps
            body = answer.model_dump_json(exclude_unset=True)
            response = Response(body, media_type=JSONResponse.media_type)
        await response(scope, receive, send)

    async def _answer(self, principal: Principal, endpoint: str, query: Query) -> Answer:
        """The service's lookup: on the event loop when its source reads local files
        (``answers_inline``: the paged files, not a database), for today's data with no proof
        to sign, and the audit can queue its record for the group commit
        (``AuditLog.deferred``; the answer waits for the flush); else on a worker thread,
        where the lookup's own audit write waits for its flush."""
        lookup = functools.partial(
            self.service.lookup,
            principal,
            endpoint,
            query.key,
            query.matter,
            query.case_no,
            query.purpose,
            query.as_of,
            query.proof,
        )
        audit = self.service.audit
        inline = getattr(self.service.source, "answers_inline", False) is True
        if not inline or query.as_of is not None or query.proof or not audit.can_defer():
            return await asyncio.get_running_loop().run_in_executor(_POOL, lookup)
        with audit.deferred() as written:
            try:
                return lookup()
            finally:  # a refusal is audited too: nothing is sent before the flush; a failed
                await written.flushed()  # flush (AuditUnavailable) replaces any answer

    def _handler(self, exc: Exception) -> Handler | None:
        handlers = self.handlers()
        for cls in type(exc).__mro__:  # as Starlette looks them up
            if cls in handlers:
                return handlers[cls]
        return None


def _json_content(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower() == b"application/json"
    return False


def _replay(first: Message, receive: Receive) -> Receive:
    replayed = False

    async def again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await receive()

    return again
