"""Request id for every request: in the logs, in the response, in the usage event."""

from __future__ import annotations

import re
import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from common.logging import request_id_var

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._\-]{8,64}$")


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


class RequestIdMiddleware:
    """Takes a well-formed ``X-Request-Id`` from the client or makes one.

    Written for both stacks so Daphne's async path never hops to a thread for it.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _start(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        request.request_id = incoming if _CLIENT_ID.match(incoming) else new_request_id()
        return request_id_var.set(request.request_id)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        token = self._start(request)
        try:
            response = self.get_response(request)
            response["x-request-id"] = request.request_id
            return response
        finally:
            request_id_var.reset(token)

    async def __acall__(self, request):
        token = self._start(request)
        try:
            response = await self.get_response(request)
            response["x-request-id"] = request.request_id
            return response
        finally:
            request_id_var.reset(token)


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
