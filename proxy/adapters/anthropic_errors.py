"""The project's errors in Anthropic's error format, for the Messages endpoints.

Anthropic's body is ``{"type": "error", "error": {"type", "message"}, "request_id"}``
and its SDK picks the exception class by status (400 BadRequestError, 401
AuthenticationError, 429 RateLimitError, 529 OverloadedError, ...). The status stays
the one the error table gives, except where Anthropic has its own for the same case.
"""

from __future__ import annotations

from django.http import JsonResponse

from common.errors import DomainError

# HTTP status -> Anthropic error type.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    # The proxy's own components (Redis, the database) are down: retry later, as for an
    # overloaded API; the SDKs and Claude Code retry both.
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_status(error: DomainError) -> int:
    upstream = getattr(error, "upstream_status", 0)
    if upstream == 529 or (upstream == 503 and error.status == 502):
        return 529  # the upstream is overloaded: Anthropic's own status for it
    if error.code == "upstream_timeout":
        return 504
    return error.status


def error_type_for(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def anthropic_error_body(error: DomainError, *, request_id: str | None = None) -> dict:
    message = error.message
    if error.param and error.param not in message:
        message = f"{error.param}: {message}"
    return {
        "type": "error",
        "error": {"type": error_type_for(anthropic_status(error)), "message": message},
        "request_id": request_id,
    }


def anthropic_error_response(error: DomainError, *, request_id: str | None = None) -> JsonResponse:
    response = JsonResponse(
        anthropic_error_body(error, request_id=request_id), status=anthropic_status(error)
    )
    for name, value in error.headers.items():
        response[name] = value
    return response
