"""The error body every refusal of the lookup API shares: ``{"error": {"rule", "message", …}}``."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


def error_response(
    status: int, rule: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "APIKey"}
    return JSONResponse(
        status_code=status,
        content={"error": {"rule": rule, "message": message, **extra}},
        headers=headers,
    )
