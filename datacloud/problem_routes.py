"""The departments' upload of returned feedback workbooks: ``POST /v1/problems/{dept}/responses``.

A multipart upload (field ``file``) with an API key of role ``department`` whose ``department``
is ``{dept}``: any other role, or a department key of another department, is refused (403).
The workbook is checked and recorded as ``datacloud.problem_responses`` does for the inbox
(channel ``api``, ``by`` the key holder and key id): 200 with the counts, or one error (413 too
large, 415 not a macro-free ``.xlsx``, 422 anything else) naming department, file, sheet, row
and column, and nothing recorded. Every accepted or refused upload is an event on the audit
trail (``problem_responses``). docs/problems.md, "Responding".
"""

import logging
import re
from collections.abc import Callable
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from datacloud import problem_store
from datacloud.lookup.audit import AuditLog, AuditUnavailable
from datacloud.lookup.auth import ALLOWED, Principal
from datacloud.lookup.responses import error_response
from datacloud.lookup.service import Forbidden
from datacloud.masking import mask_text
from datacloud.paths import StorageRoot
from datacloud.problem_responses import MAX_BYTES, ResponseFileError, import_bytes, shown_name

log = logging.getLogger(__name__)
ENDPOINT = "problem_responses"  # ALLOWED's name for the upload
PATH = "/v1/problems/{dept}/responses"
_DEPT = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


class ResponsesAccepted(BaseModel):
    dept: str
    file: str
    file_sha256: str = Field(description="SHA-256 of the uploaded file")
    recorded: int = Field(description="response records appended to the log (0 when re-sent)")
    already_imported: bool = Field(description="the same file was imported before: no change")
    by_response: dict[str, int] = Field(description="answers per response: fixed, disputed, …")


def _file_name(name: str | None) -> str:
    """The uploaded file's base name, printable and short (it appears in messages)."""
    base = PurePath((name or "upload.xlsx").replace("\\", "/")).name or "upload.xlsx"
    return shown_name(base)


def _by(principal: Principal) -> str:
    return f"key:{mask_text(principal.holder)}" + (
        f" ({principal.key_id})" if principal.key_id else ""
    )


def problem_router(
    root: StorageRoot,
    who: Callable[..., Principal],
    audit: AuditLog | None = None,
    errors: dict[int | str, dict[str, Any]] | None = None,
) -> APIRouter:
    """The upload route over ``root``'s problem table and responses logs; ``who`` is the app's
    principal dependency, ``audit`` the trail its events go to, ``errors`` its error bodies."""
    router = APIRouter(tags=["problems"])
    allowed = ALLOWED.get(ENDPOINT, frozenset({"department"}))

    def event(principal: Principal, detail: dict[str, Any]) -> None:
        if audit is None:
            return
        try:
            audit.event("problem_responses", principal, detail)
        except AuditUnavailable:
            log.error("problems: the upload event could not be audited")

    @router.post(
        PATH,
        response_model=ResponsesAccepted,
        responses={
            **{k: v for k, v in (errors or {}).items() if k in (401, 403, 413, 422, 429)},
            415: {"description": "not a macro-free .xlsx feedback workbook"},
            503: {"description": "no problem table yet (the tracking night has not run)"},
        },
    )
    def upload_responses(
        dept: str,
        file: Annotated[UploadFile, File(description="the returned .xlsx feedback workbook")],
        principal: Annotated[Principal, Depends(who)],
    ) -> Any:
        """A department's returned feedback workbook (问题数据反馈表): checked against the
        problem table and its answers appended to the department's responses log, all or
        nothing. Only a ``department`` key of this department may send it."""
        if principal.role not in allowed:
            raise Forbidden(f"role {principal.role} may not send problem responses")
        if not _DEPT.match(dept) or principal.department != dept:
            raise Forbidden("a department key may send responses for its own department only")
        name = _file_name(file.filename)
        if problem_store.version(root) is None:
            return error_response(
                503,
                "NO_PROBLEM_TABLE",
                "no problem table yet: the tracking night has not run",
                message_zh="问题数据台账尚未生成（问题跟踪尚未运行）",
            )
        data = file.file.read(MAX_BYTES + 1)
        try:
            result = import_bytes(
                root,
                dept,
                data,
                name,
                problem_store.read_problems(root),
                by=_by(principal),
                channel="api",
            )
        except ResponseFileError as e:
            event(principal, {"dept": dept, "file": name, "outcome": "refused", "code": e.code})
            return error_response(
                e.status,
                "PROBLEM_RESPONSES_" + e.code.upper(),
                e.message,
                message_zh=e.message,
                **{k: v for k, v in e.as_dict().items() if k in ("sheet", "row", "column")},
            )
        event(
            principal,
            {
                "dept": dept,
                "file": name,
                "outcome": "already_imported" if result.already_imported else "accepted",
                "recorded": result.recorded,
                "file_sha256": result.file_sha256,
            },
        )
        return JSONResponse(result.as_dict())

    return router
