"""One error vocabulary for the whole project, rendered in OpenAI's error format.

Every domain failure is a ``DomainError`` subclass with a stable ``code``. The table
below is the one place where a code becomes an HTTP status and an OpenAI error
``type``, so the official SDKs raise the matching typed exception
(``AuthenticationError`` for 401, ``RateLimitError`` for 429, ...).
"""

from __future__ import annotations

from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

# code -> (HTTP status, OpenAI error type)
ERROR_TABLE: dict[str, tuple[int, str]] = {
    "invalid_request_error": (400, "invalid_request_error"),
    "invalid_json": (400, "invalid_request_error"),
    "context_length_exceeded": (400, "invalid_request_error"),
    "pii_detected": (400, "invalid_request_error"),
    "content_blocked": (400, "invalid_request_error"),
    "invalid_api_key": (401, "invalid_request_error"),
    "permission_denied": (403, "invalid_request_error"),
    "model_not_allowed": (403, "invalid_request_error"),
    "model_not_priced": (403, "invalid_request_error"),
    "not_found": (404, "invalid_request_error"),
    "model_not_found": (404, "invalid_request_error"),
    "method_not_allowed": (405, "invalid_request_error"),
    "request_too_large": (413, "invalid_request_error"),
    "rate_limit_exceeded": (429, "rate_limit_error"),
    "insufficient_quota": (429, "insufficient_quota"),
    "server_error": (500, "server_error"),
    "upstream_error": (502, "upstream_error"),
    "upstream_auth_failed": (502, "upstream_error"),
    "upstream_timeout": (502, "upstream_error"),
    "request_timeout": (504, "upstream_error"),
    "service_unavailable": (503, "server_error"),
}


class DomainError(Exception):
    """Base of every error the project raises on purpose."""

    code = "server_error"
    message = "The server had an error while processing your request."

    def __init__(
        self,
        message: str | None = None,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.message = message or self.message
        self.param = param
        self.headers = headers or {}
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return ERROR_TABLE[self.code][0]

    @property
    def error_type(self) -> str:
        return ERROR_TABLE[self.code][1]


class InvalidRequest(DomainError):
    code = "invalid_request_error"
    message = "The request is not valid."


class InvalidJson(DomainError):
    code = "invalid_json"
    message = "We could not parse the JSON body of your request."


class RequestTooLarge(DomainError):
    code = "request_too_large"
    message = "The request body is too large."


class NotFound(DomainError):
    code = "not_found"
    message = "The requested resource does not exist."


class PermissionDenied(DomainError):
    code = "permission_denied"
    message = "You are not allowed to perform this action."


class RequestTimeout(DomainError):
    """The request's deadline passed before an upstream answered (retries included)."""

    code = "request_timeout"


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
    message = "The service is temporarily unavailable."


def error_body(*, message: str, code: str, param: str | None = None) -> dict:
    error_type = ERROR_TABLE.get(code, ERROR_TABLE["server_error"])[1]
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(exc: DomainError) -> JsonResponse:
    response = JsonResponse(
        error_body(message=exc.message, code=exc.code, param=exc.param), status=exc.status
    )
    for name, value in exc.headers.items():
        response[name] = value
    return response


def _first_field_error(detail) -> tuple[str | None, str]:
    """The first (field, message) of a DRF ValidationError's nested detail."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner_field, message = _first_field_error(value)
            if field == "non_field_errors":
                return inner_field, message
            return (f"{field}.{inner_field}" if inner_field else field), message
    if isinstance(detail, list) and detail:
        if all(isinstance(item, dict) for item in detail):
            # A list of objects (``messages``): DRF gives every item its errors, an empty
            # dict for the valid ones; the first invalid one is named by its index.
            for index, item in enumerate(detail):
                if item:
                    inner_field, message = _first_field_error(item)
                    return (f"{index}.{inner_field}" if inner_field else str(index)), message
        return _first_field_error(detail[0])
    return None, str(detail)


def domain_error_from_drf(exc: Exception) -> DomainError | None:
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, drf_exceptions.ParseError):
        return InvalidJson(str(exc.detail))
    if isinstance(exc, drf_exceptions.ValidationError):
        field, message = _first_field_error(exc.detail)
        text = f"{field}: {message}" if field else message
        return InvalidRequest(text, param=field)
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        error = DomainError(str(exc.detail))
        error.code = "invalid_api_key"
        return error
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return PermissionDenied(str(exc.detail))
    if isinstance(exc, (drf_exceptions.NotFound, Http404)):
        return NotFound()
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        error = DomainError(str(exc.detail))
        error.code = "method_not_allowed"
        return error
    if isinstance(exc, drf_exceptions.Throttled):
        error = DomainError(str(exc.detail))
        error.code = "rate_limit_exceeded"
        return error
    return None


def drf_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's exception handler: every API error in OpenAI's format."""
    error = domain_error_from_drf(exc)
    if error is None:
        from common.outages import is_outage_error, unavailable_for

        if not is_outage_error(exc):
            return None  # an unexpected exception: Django's 500 handling takes over
        error = unavailable_for(exc)  # Redis or the database is unreachable: a 503
    response = Response(
        error_body(message=error.message, code=error.code, param=error.param),
        status=error.status,
    )
    for name, value in error.headers.items():
        response[name] = value
    if getattr(exc, "auth_header", None):
        response["WWW-Authenticate"] = exc.auth_header
    return response
