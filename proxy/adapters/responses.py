"""``/v1/responses``: OpenAI's Responses API, translated onto the chat pipeline.

The request becomes a chat-completions body (``responses_request``), runs through
``chat_run`` (keys, model access, limits, budget, compression, cache, upstream with
fallback, one usage event labelled "responses"), and the chat answer or stream comes
back as a Response object or the Responses event stream (``responses_answer``).
``store: true`` (OpenAI's default) keeps the answer for ``GET``, ``DELETE`` and
``previous_response_id``, per organization (``responses_store``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from django.conf import settings
from django.db import DatabaseError
from django.http import StreamingHttpResponse

from accounts.selectors import Principal
from common.db import run_in_db_thread
from common.errors import InvalidRequest, ServiceUnavailable
from proxy.adapters import responses_native, responses_store
from proxy.adapters.chat_bridge import ChatRun, chat_run
from proxy.adapters.responses_answer import (
    ResponseEvents,
    history_message,
    new_id,
    response_from_chat,
)
from proxy.adapters.responses_items import chat_messages_lenient, items_page, stored_input_items
from proxy.adapters.responses_request import responses_request
from proxy.pipeline.registry import stages_require_translation
from proxy.providers.base import UpstreamError
from proxy.views import (
    ProxyEndpoint,
    _dumps,
    authenticate,
    json_object,
    json_response,
    openai_errors,
)

logger = logging.getLogger(__name__)


async def _db(fn, **kwargs):
    try:
        return await run_in_db_thread(fn, **kwargs)
    except DatabaseError as error:
        logger.warning("stored responses unavailable: %s", error)
        raise ServiceUnavailable("Stored responses are unavailable; try again shortly.") from None


async def _history(principal: Principal, body: dict) -> list[dict]:
    previous_id = body.get("previous_response_id")
    if previous_id is None:
        return []
    if not isinstance(previous_id, str) or not previous_id:
        raise InvalidRequest(
            "'previous_response_id' must be a response id.", param="previous_response_id"
        )
    stored = await _db(
        responses_store.stored_response_get,
        organization_id=principal.organization_id,
        response_id=previous_id,
        param="previous_response_id",
    )
    return stored.conversation


async def _store(
    principal: Principal,
    response: dict,
    *,
    history: list[dict],
    client_input,
) -> None:
    """Keep the answer before the client sees it, so its id works at once. The answer is
    already paid for: if the database fails it is still delivered (and logged)."""
    if response.get("store") is False:
        return
    try:
        await run_in_db_thread(
            responses_store.stored_response_create,
            organization_id=principal.organization_id,
            api_key_id=principal.key_id,
            response=response,
            conversation=[*history, history_message(response.get("output") or [])],
            input_items=stored_input_items(client_input),
        )
    except DatabaseError:
        logger.exception("could not store response %s", response["id"])


def _storer(principal: Principal, body: dict, history: list[dict]):
    """The store step for one request: its conversation so far and this turn's input."""
    turn = [*history, *chat_messages_lenient(body.get("input"))]

    async def store(response: dict) -> None:
        await _store(principal, response, history=turn, client_input=body.get("input"))

    return store


def _sse(event: dict) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + _dumps(event) + b"\n\n"


async def _events(run: ChatRun, events: ResponseEvents, store) -> AsyncIterator[bytes]:
    chunks = run.chunks  # a cache hit's too: chat_bridge replays it as a stream
    try:
        for event in events.start():
            yield _sse(event)
        try:
            async for chunk in chunks:
                for event in events.add(chunk):
                    yield _sse(event)
        except UpstreamError as error:
            # Headers are sent already: the failure travels as the terminal event.
            yield _sse(events.failed(code="server_error", message=error.message))
            return
        closing, final = events.finish()
        for event in closing:
            yield _sse(event)
        await store(final["response"])
        yield _sse(final)
    finally:
        # Closed here, so a client that hangs up is accounted at once.
        await chunks.aclose()


class ResponsesView(ProxyEndpoint):
    http_method_names = ["post"]
    endpoint = "responses"

    @openai_errors
    async def post(self, request):
        principal = await authenticate(request)
        body = json_object(request)
        history = await _history(principal, body)
        store = _storer(principal, body, history)
        model = body.get("model") or settings.DEFAULT_MODEL
        if isinstance(model, str) and await responses_native.native_plan(principal, model):
            call = responses_native.native_call(
                request, principal, {**body, "model": model}, history
            )
            if not await stages_require_translation(call):
                native = responses_native.NativeRequest(
                    {**body, "model": model}, history, default_model=settings.DEFAULT_MODEL
                )
                stream = body.get("stream") is True
                return await responses_native.native_run(call, native, store, stream=stream)
        parsed = responses_request(body, default_model=settings.DEFAULT_MODEL, history=history)
        run = await chat_run(request, principal, parsed.chat_body, endpoint=self.endpoint)
        response_id, created_at = new_id("resp"), int(time.time())
        if not parsed.stream:
            response = response_from_chat(
                parsed, run.body or {}, response_id=response_id, created_at=created_at
            )
            await store(response)
            return json_response(response, headers=run.headers)
        events = ResponseEvents(parsed, response_id=response_id, created_at=created_at)
        streamed = StreamingHttpResponse(
            _events(run, events, store), content_type="text/event-stream"
        )
        streamed["Cache-Control"] = "no-cache"
        streamed["X-Accel-Buffering"] = "no"
        for name, value in run.headers.items():
            streamed[name] = value
        return streamed


class ResponseDetailView(ProxyEndpoint):
    http_method_names = ["get", "delete"]
    endpoint = "responses"

    @openai_errors
    async def get(self, request, response_id: str):
        principal = await authenticate(request)
        stored = await _db(
            responses_store.stored_response_get,
            organization_id=principal.organization_id,
            response_id=response_id,
        )
        return json_response(stored.response)

    @openai_errors
    async def delete(self, request, response_id: str):
        principal = await authenticate(request)
        await _db(
            responses_store.stored_response_delete,
            organization_id=principal.organization_id,
            response_id=response_id,
        )
        return json_response({"id": response_id, "object": "response", "deleted": True})


class ResponseInputItemsView(ProxyEndpoint):
    http_method_names = ["get"]
    endpoint = "responses"

    @openai_errors
    async def get(self, request, response_id: str):
        principal = await authenticate(request)
        stored = await _db(
            responses_store.stored_response_get,
            organization_id=principal.organization_id,
            response_id=response_id,
        )
        page = items_page(
            stored.input_items,
            limit=request.GET.get("limit"),
            order=request.GET.get("order"),
            after=request.GET.get("after"),
        )
        return json_response(page)


class ResponseCancelView(ProxyEndpoint):
    """Only a background response can be cancelled, and this proxy runs none (``background``
    is refused): a stored response is a 400 saying so, as OpenAI answers for a response
    that was not created in the background; another organization's id is a 404."""

    http_method_names = ["post"]
    endpoint = "responses"

    @openai_errors
    async def post(self, request, response_id: str):
        principal = await authenticate(request)
        await _db(
            responses_store.stored_response_get,
            organization_id=principal.organization_id,
            response_id=response_id,
        )
        raise InvalidRequest(
            "Only background responses can be cancelled, and this proxy does not run "
            "background responses.",
            param="response_id",
        )
