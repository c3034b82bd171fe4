"""Request id for every request: in the logs, in the response, in the usage event."""

from __future__ import annotations

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from common.access_log import (
    RequestContext,
    access_log_write,
    request_context_var,
    request_id_from,
    valid_traceparent,
)
from common.logging import request_id_var


class RequestIdMiddleware:
    """Gives ``request.request_id`` and answers with ``x-request-id``.

    Under ASGI the id was given by ``common.access_log.RequestContextMiddleware``, which
    also writes the access line; on the paths without it (WSGI, the test client) this
    middleware does both for the request it serves. Written for both stacks so Daphne's
    async path never hops to a thread for it.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _start(self, request):
        context = request_context_var.get()
        if context is not None:
            request.request_id = context.request_id
            return None
        traceparent = valid_traceparent(request.headers.get("traceparent", ""))
        context = RequestContext(
            request_id=request_id_from(request.headers.get("X-Request-Id", "")),
            method=request.method,
            path=request.path,
            traceparent=traceparent,
            tracestate=request.headers.get("tracestate", "")[:512] if traceparent else "",
        )
        request.request_id = context.request_id
        return context, request_context_var.set(context), request_id_var.set(context.request_id)

    @staticmethod
    def _end(started, status: int) -> None:
        if started is None:
            return
        context, context_token, id_token = started
        try:
            if not context.call_owns_line:
                access_log_write(
                    status=status, latency_ms=(time.perf_counter() - context.started) * 1000
                )
        finally:
            request_id_var.reset(id_token)
            request_context_var.reset(context_token)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        started = self._start(request)
        status = 500
        try:
            response = self.get_response(request)
            response["x-request-id"] = request.request_id
            status = response.status_code
            return response
        finally:
            self._end(started, status)

    async def __acall__(self, request):
        started = self._start(request)
        status = 500
        try:
            response = await self.get_response(request)
            response["x-request-id"] = request.request_id
            status = response.status_code
            return response
        finally:
            self._end(started, status)


class AllowedHostMiddleware:
    """ALLOWED_HOSTS for the API path, which skips Django's CommonMiddleware.

    ``get_host()`` raises ``DisallowedHost`` for an unknown Host header; Django turns
    that into a 400 like on every other path.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        request.get_host()
        return await self.get_response(request)
