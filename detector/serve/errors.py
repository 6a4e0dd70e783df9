"""One error shape for every failure: `{"error": {"code": "...", "message": "..."}}`.

Clients branch on `code` (stable, snake_case) and show `message` (one line, says what to do). FastAPI's
own errors (validation, 404, 405) and unexpected exceptions are mapped to the same shape, so a client
never has to parse two formats.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("detector.serve")


class ApiError(Exception):
    """An error with its HTTP status; raised anywhere below a route, rendered by the handler."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


#: ImageLoadError kinds (detector.errors) -> (HTTP status, code).
_LOAD_ERRORS = {
    "too_many_pixels": (413, "too_many_pixels"),
    "not_an_image": (415, "not_an_image"),
    "empty": (415, "not_an_image"),
}


def load_error(filename: str, reason: str, kind: str = "undecodable") -> ApiError:
    """The API error for an image that could not be decoded, by the kind of failure detector.images saw."""
    status, code = _LOAD_ERRORS.get(kind, (422, "undecodable_image"))
    return ApiError(status, code, f"{filename}: {reason}")


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "overloaded",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.code, e.message, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(e.status_code, f"http_{e.status_code}")
        return error_response(e.status_code, code, str(e.detail), dict(e.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        parts = []
        for err in e.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "body"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error: {e.__class__.__name__}")
