"""The ASGI handler for the OpenAI-compatible API (``/v1/``): no thread on the hot path.

Django's stock ASGI path hops to a thread many times per request: each
``MiddlewareMixin`` middleware (sessions, CSRF, messages, ...) runs its hooks through
``sync_to_async``, the ``request_started``/``request_finished`` signals have sync
receivers, and every request gets a fresh thread-sensitive executor. The API needs
none of that (it authenticates by key, sets no cookies, renders no pages and does
its database work on pool threads that manage their own connections), so its
requests go through this handler: the short, async-native ``settings.API_MIDDLEWARE``
list, Django's URL routing, views and error handling, and the same disconnect
handling as Django (an abandoned stream is cancelled), without the signals.
"""

import asyncio
from contextlib import suppress

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix
from django.utils.module_loading import import_string


class ApiASGIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(settings.API_MIDDLEWARE):
            middleware = import_string(path)
            if not getattr(middleware, "async_capable", False):
                raise ImproperlyConfigured(f"{path} in API_MIDDLEWARE must be async-capable.")
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"the API handler serves HTTP only, not {scope['type']}")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            return
        # The view races the client's disconnect: when the client leaves, the view (a
        # stream relaying an upstream answer) is cancelled and cleans up after itself.
        respond = asyncio.create_task(self._respond(request, send))
        disconnect = asyncio.create_task(self._disconnected(receive))
        await asyncio.wait({respond, disconnect}, return_when=asyncio.FIRST_COMPLETED)
        for task in (disconnect, respond):
            if not task.done():
                task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        body_file.close()

    @staticmethod
    async def _disconnected(receive) -> None:
        """Returns once the client has gone, or the response is complete.

        Not Django's ``listen_for_disconnect``, which raises ``RequestAborted``: Daphne reports
        a disconnect after every complete response too, so that exception was raised for
        every request, and its traceback tied the request's whole object graph (request,
        body file, tasks, Twisted's request) into a reference cycle that only the garbage
        collector could free: 90 objects per request and most of its collections.
        """
        while (await receive())["type"] != "http.disconnect":
            pass  # nothing else may arrive after the body; ignored rather than fatal

    async def _respond(self, request, send):
        response = await self.run_get_response(request)
        # Not response.close(): it only fires request_finished here (the API's
        # responses hold no files), whose sync receivers would cost a thread hop.
        with suppress(asyncio.CancelledError):
            await self.send_response(response, send)


class PathRouter:
    """Sends ``/v1/`` to the API handler and everything else to Django's full stack."""

    def __init__(self, *, api, site, prefix: str = "/v1/"):
        self.api = api
        self.site = site
        self.prefix = prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            return await self.api(scope, receive, send)
        return await self.site(scope, receive, send)
