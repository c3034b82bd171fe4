"""One JSON access line per request, and the request's identity on every log record.

``RequestContextMiddleware`` wraps the whole ASGI application (Daphne, ``python -m
synthlang_site``, the Lambda entry): it gives the request its id before anything runs and
holds it in a context variable for the whole of the request's task, so the records written
while a stream is relayed, by Django's own error logging after the middleware chain, and by
the accounting that runs after the response (tasks copy the context they are created in)
all carry it. Django's ``RequestIdMiddleware`` reads the id from here, and makes one only on
the paths that skip this wrapper (WSGI, the test client).

A proxied call writes its own line once it is accounted (it knows the tokens, the cost and
the cache result; a stream is accounted when it ends): ``call_started`` marks the request so
this wrapper does not write a second, bare one. Every other request (the admin, the
management API, a refusal before any call began) gets its line here when its response ends.

Successes are sampled (``ACCESS_LOG_SAMPLE_RATE``), errors never. The line holds names,
numbers and ids: never a prompt, a completion or a key (only its public prefix).
"""

from __future__ import annotations

import contextvars
import logging
import random
import re
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings

from common import tracing
from common.logging import request_id_var

logger = logging.getLogger("synthlang.access")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")
# W3C Trace Context, version 00's layout (later versions keep it as a prefix).
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_TRACESTATE_MAX = 512


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


def request_id_from(incoming: str) -> str:
    """The client's ``X-Request-Id`` when it is well formed, else a new one."""
    return incoming if _CLIENT_ID.match(incoming or "") else new_request_id()


def valid_traceparent(value: str) -> str:
    """``value`` when it is a W3C ``traceparent`` a tracer would accept, else ``""``."""
    match = _TRACEPARENT.match(value.strip().lower()) if value else None
    if match is None:
        return ""
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return ""
    if version == "00" and rest:
        return ""
    return match.group(0)


@dataclass
class RequestContext:
    request_id: str
    method: str = ""
    path: str = ""
    traceparent: str = ""
    tracestate: str = ""
    started: float = field(default_factory=time.perf_counter)
    status: int = 0
    # Set once a proxied call owns the line (``call_started``).
    call_owns_line: bool = False


request_context_var: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "request_context", default=None
)


def current_request() -> RequestContext | None:
    return request_context_var.get()


def upstream_headers() -> dict[str, str]:
    """The headers that tie an upstream call to the client's request: its id, and the
    client's trace context when it sent one."""
    context = request_context_var.get()
    if context is None:
        request_id = request_id_var.get()
        return {} if request_id == "-" else {"X-Request-Id": request_id}
    headers = {"X-Request-Id": context.request_id}
    # With tracing on, the upstream call's own span is the parent the upstream sees (it
    # carries the client's trace id); otherwise the client's context is relayed as it came.
    if tracing.inject(headers):
        return headers
    if context.traceparent:
        headers["traceparent"] = context.traceparent
        if context.tracestate:
            headers["tracestate"] = context.tracestate
    return headers


def call_started() -> RequestContext | None:
    """A proxied call will write this request's line; returns the request's context."""
    context = request_context_var.get()
    if context is not None:
        context.call_owns_line = True
    return context


def _sampled(status: int) -> bool:
    if status >= 400 or status == 0:
        return True
    rate = settings.ACCESS_LOG_SAMPLE_RATE
    return rate >= 1.0 or (rate > 0.0 and random.random() < rate)


def access_log_write(*, status: int, latency_ms: float, **fields) -> None:
    """Write the access line (``fields`` are the call's; ``None`` values are left out)."""
    if not settings.ACCESS_LOG or not _sampled(status):
        return
    context = request_context_var.get()
    line = {"status": status, "latency_ms": round(latency_ms, 3)}
    if context is not None:
        line["method"], line["path"] = context.method, context.path
    for name, value in fields.items():
        if value is not None:
            line[name] = value
    logger.info("access", extra=line)


def _header(scope: dict, wanted: bytes) -> str:
    for name, value in scope.get("headers") or ():
        if name.lower() == wanted:
            return value.decode("latin-1")
    return ""


class RequestContextMiddleware:
    """ASGI middleware: the request's id and trace context, and its line at the end."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.application(scope, receive, send)
        traceparent = valid_traceparent(_header(scope, b"traceparent"))
        context = RequestContext(
            request_id=request_id_from(_header(scope, b"x-request-id")),
            method=scope.get("method", ""),
            path=scope.get("path", ""),
            traceparent=traceparent,
            tracestate=_header(scope, b"tracestate")[:_TRACESTATE_MAX] if traceparent else "",
        )
        context_token = request_context_var.set(context)
        id_token = request_id_var.set(context.request_id)

        async def send_noting_status(message):
            if message["type"] == "http.response.start":
                context.status = message["status"]
            await send(message)

        try:
            await self.application(scope, receive, send_noting_status)
        finally:
            if not context.call_owns_line:
                access_log_write(
                    status=context.status or 499,
                    latency_ms=(time.perf_counter() - context.started) * 1000,
                )
            request_id_var.reset(id_token)
            request_context_var.reset(context_token)
