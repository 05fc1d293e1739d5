"""The lookup API's gate: lockout, key, rate and quota checked from the headers alone, before
any byte of the body is read, then the body capped (pure ASGI middleware, outermost)."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import anyio.to_thread
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datacloud.lookup.audit import AuditLog, AuditUnavailable
from datacloud.lookup.auth import ApiKeys, Principal, key_hint
from datacloud.lookup.limits import LookupLimiter, Refusal
from datacloud.lookup.responses import error_response
from datacloud.masking import mask_text
from datacloud.problem_responses import MAX_BYTES

log = logging.getLogger(__name__)

# no key needed, no personal data (the proof keys: public keys, for verifiers anywhere)
OPEN_PATHS = frozenset({"/healthz", "/docs", "/openapi.json", "/v1/proofs/keys"})
UNAUTHORISED_MESSAGE = ("a valid X-API-Key header is required", "需要有效的 X-API-Key 请求头")
_REFUSALS = {
    "RATE_LIMITED": (
        "too many requests for this key (limit {limit}); retry after {wait} s",
        "该密钥请求过于频繁（上限 {limit}），请 {wait} 秒后重试",
    ),
    "QUOTA_EXCEEDED": (
        "the key's quota ({limit}) is used up; retry after {wait} s",
        "该密钥的查询配额（{limit}）已用完，请 {wait} 秒后重试",
    ),
    "LOCKED_OUT": (
        "too many requests with a wrong X-API-Key from this address; retry after {wait} s",
        "该地址多次使用无效密钥，已被暂时锁定，请 {wait} 秒后重试",
    ),
}
# a department's returned feedback workbook (POST /v1/problems/{dept}/responses, docs/problems.md):
# the workbook's own cap and room for the multipart envelope
UPLOAD_PATH = re.compile(r"/v1/problems/([a-z][a-z0-9_]{1,30})/responses")  # config.CODE
UPLOAD_MAX_BODY = MAX_BYTES + 64 * 1024
_MAX_BODY_MESSAGES = 100_000  # a bound on the receive loop beside the byte cap
# on a refusal before the body is read: uvicorn closes the connection after the answer instead
# of reading (and discarding) the rest of the body to keep the connection alive
_HANG_UP = {"Connection": "close"}


def _shown(text: str, limit: int = 120) -> str:
    """A client-sent string as a log line may show it: masked, printable, short."""
    return mask_text(text)[:limit].encode("unicode_escape").decode("ascii")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):  # bounded by the request's headers
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def audit_event(
    audit: AuditLog, kind: str, principal: Principal | None, detail: dict[str, Any]
) -> None:
    """Audit a non-lookup event off the event loop (the write is fsynced); a trail that cannot
    be written is logged, and the request is refused all the same."""
    try:
        await anyio.to_thread.run_sync(functools.partial(audit.event, kind, principal, detail))
    except AuditUnavailable:
        log.error("lookup: the %s event could not be audited", kind)


def _refused(refusal: Refusal) -> JSONResponse:
    en, zh = _REFUSALS[refusal.rule]
    words = {"limit": refusal.limit, "wait": refusal.retry_after}
    return error_response(
        429,
        refusal.rule,
        en.format(**words),
        headers={"Retry-After": str(refusal.retry_after), **_HANG_UP},
        message_zh=zh.format(**words),
        retry_after=refusal.retry_after,
    )


class RequestGate:
    """Pure ASGI middleware, outermost: decides on lockout, key and limits from the headers
    alone, before the app (or anything) reads the body; then reads the body itself up to
    ``max_body_bytes`` (Content-Length checked first, chunked bodies counted as they stream)
    and hands it on. Paths in ``OPEN_PATHS`` need no key; the body cap applies everywhere, a
    department key's upload of a feedback workbook with the workbook's own cap (``_cap``)."""

    def __init__(
        self, app: ASGIApp, keys: ApiKeys, limiter: LookupLimiter, audit: AuditLog
    ) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter
        self.audit = audit
        self.max_body = limiter.config.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if path not in OPEN_PATHS:
            client = _client(scope)
            locked = self.limiter.locked_out(client)
            if locked is not None:
                await _refused(locked)(scope, receive, send)
                return
            key = _header(scope, b"x-api-key")
            principal = self.keys.authenticate(key)
            if principal is None:
                await self._unauthorised(client, key, path)
                en, zh = UNAUTHORISED_MESSAGE
                refused = error_response(401, "UNAUTHORISED", en, headers=_HANG_UP, message_zh=zh)
                await refused(scope, receive, send)
                return
            refusal = self.limiter.admit(principal.key_id, principal.role)
            if refusal is not None:
                if refusal.first:  # the first refusal per key and minute is audited
                    log.warning(
                        "lookup: key %s (%s) refused: %s (%s)",
                        principal.key_id,
                        principal.role,
                        refusal.rule,
                        refusal.limit,
                    )
                    detail = {"rule": refusal.rule, "limit": refusal.limit, "client": client}
                    await audit_event(self.audit, refusal.rule.lower(), principal, detail)
                await _refused(refusal)(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
            cap = self._cap(path, principal)
        else:
            cap = self.max_body
        body = await self._body(scope, receive, send, cap)
        if body is None:
            return
        await self.app(scope, body, send)

    async def _unauthorised(self, client: str, key: str | None, path: str) -> None:
        reason = "missing" if not key else "unknown"
        hint = key_hint(key)
        log.warning(
            "lookup: 401 %s X-API-Key (%s) from %s on %s", reason, hint, client, _shown(path)
        )
        starts_lockout = self.limiter.failed_key(client)
        detail = {"client": client, "path": _shown(path), "reason": reason, "key": hint}
        await audit_event(self.audit, "unauthorised", None, detail)
        if starts_lockout:
            lockout = self.limiter.describe_lockout()
            log.warning("lookup: client %s locked out: %s", client, lockout)
            await audit_event(self.audit, "lockout", None, {"client": client, "rule": lockout})

    def _cap(self, path: str, principal: Principal) -> int:
        """The body cap: ``max_body_bytes``, but a department key's upload of its own
        department's feedback workbook may be as large as a workbook may be
        (``problem_responses.MAX_BYTES``); another department's upload keeps the small cap, so
        no large body is read before the route's 403."""
        upload = UPLOAD_PATH.fullmatch(path)
        if (
            upload is not None
            and principal.role == "department"
            and upload.group(1) == principal.department
        ):
            return max(self.max_body, UPLOAD_MAX_BODY)
        return self.max_body

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, cap: int) -> None:
        response = error_response(
            413,
            "BODY_TOO_LARGE",
            f"the request body is larger than {cap} bytes",
            headers=_HANG_UP,
            message_zh=f"请求体超过 {cap} 字节上限",
        )
        await response(scope, receive, send)

    async def _body(self, scope: Scope, receive: Receive, send: Send, cap: int) -> Receive | None:
        """A receive that replays the body read here (at most ``cap`` bytes), or None when a
        413 was sent."""
        length = _header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > cap:
            await self._too_large(scope, receive, send, cap)  # nothing of the body read
            return None
        chunks: list[bytes] = []
        size = 0
        first: Message = {"type": "http.request", "body": b"", "more_body": False}
        for _ in range(_MAX_BODY_MESSAGES):
            message = await receive()
            if message["type"] != "http.request":  # the client went away: hand that on
                first = message
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await self._too_large(scope, receive, send, cap)
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        else:
            await self._too_large(scope, receive, send, cap)
            return None
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        return replay
