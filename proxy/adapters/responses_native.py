"""Responses requests to routes whose first deployments speak the Responses API: passed
through to the upstream's ``/responses``.

The request goes upstream as the client sent it (model mapped to the deployment's, the
stored conversation of ``previous_response_id`` sent as input items, ``store`` false:
the proxy keeps its own store), so built-in tools, reasoning options and fields the
proxy does not know reach the provider. The call still goes through the pipeline's
admission (model access, rate limits, budget, counted on the request's text), retries
and fallback, and accounting of the Responses usage object. A fallback deployment that
does not speak Responses gets the request translated to chat completions and answers
in the same Response format. Compression and the response cache are off here: both act
on chat bodies (docs/decisions/0022).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from django.http import StreamingHttpResponse

from accounts.selectors import Principal
from billing import pricing
from common.errors import InvalidRequest
from proxy import accounting, gateway, metrics, routing
from proxy.adapters.responses_answer import ResponseEvents, new_id, response_from_chat
from proxy.adapters.responses_items import estimate_chat_body, items_from_chat
from proxy.adapters.responses_request import ResponsesRequest, responses_request
from proxy.call_failures import failures_accounted
from proxy.providers import provider_for
from proxy.providers.base import UpstreamError
from proxy.serializers import ChatCompletionRequestSerializer
from proxy.tokens import count_tokens
from proxy.views import _dumps, json_response, new_call, validated

logger = logging.getLogger(__name__)

ENDPOINT = "responses"
# Server-side state the proxy does not keep for a Responses upstream: refused on both paths.
REFUSED_FIELDS = {
    "background": "Background responses are not supported by this proxy.",
    "conversation": "Conversations are not supported; use previous_response_id.",
}
TERMINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
TEXT_DELTAS = ("response.output_text.delta", "response.function_call_arguments.delta")


def speaks_responses(deployment: routing.DeploymentPlan) -> bool:
    check = getattr(provider_for(deployment.provider), "speaks_responses", None)
    return bool(check is not None and check(deployment.options))


async def native_plan(principal: Principal, model: str) -> routing.RoutePlan | None:
    """The route's plan when its first-priority deployments all speak the Responses API,
    else None (the request is translated, which every provider takes)."""
    plan = await routing.resolve_route(principal.organization_id, model)
    if not plan.deployments:
        return None
    first = min(deployment.priority for deployment in plan.deployments)
    if all(speaks_responses(d) for d in plan.deployments if d.priority == first):
        return plan
    return None


def native_call(request, principal: Principal, body: dict, history: list[dict]):
    """The pipeline's call for a native request: its text as a chat body, for admission
    to count and attribution to read; that body never goes upstream."""
    for name, reason in REFUSED_FIELDS.items():
        if body.get(name):
            raise InvalidRequest(reason, param=name)
    chat = validated(estimate_chat_body(body, history), ChatCompletionRequestSerializer)
    call = new_call(request, principal, "chat.completions", chat)
    call.endpoint_label = ENDPOINT
    call.compression_header = "off"
    call.cache_header = "off"
    return call


class NativeRequest:
    """What the upstream gets, and how its answers become the proxy's Response objects."""

    def __init__(self, body: dict, history: list[dict], *, default_model: str):
        self.body = body
        self.store = body.get("store") is not False
        self.previous_response_id = body.get("previous_response_id")
        self.response_id = new_id("resp")
        self.created_at = int(time.time())
        upstream = {name: value for name, value in body.items() if name != "previous_response_id"}
        if history:
            # The proxy keeps the conversation and sends it again; the upstream keeps nothing.
            client_input = body.get("input")
            if isinstance(client_input, str):
                client_input = [{"type": "message", "role": "user", "content": client_input}]
            upstream["input"] = [*items_from_chat(history), *(client_input or [])]
        upstream["store"] = False
        self.upstream_body = upstream
        # For a fallback deployment that speaks chat only: the same request translated
        # (None when it cannot be, e.g. a built-in tool; such a fallback is skipped).
        try:
            self.translated: ResponsesRequest | None = responses_request(
                body, default_model=default_model, history=history
            )
            self.untranslatable = ""
        except InvalidRequest as error:
            self.translated, self.untranslatable = None, error.message

    def patch(self, response: dict) -> dict:
        """The upstream's Response object as the proxy's: its id, the client's ``store``
        and ``previous_response_id`` (the upstream saw neither)."""
        return {
            **response,
            "id": self.response_id,
            "store": self.store,
            "previous_response_id": self.previous_response_id,
        }

    def chat_body(self, *, stream: bool) -> dict:
        if self.translated is None:
            raise UpstreamError(
                "The route's Responses deployments failed and its fallback, which speaks "
                f"chat completions only, cannot take this request: {self.untranslatable}",
                retryable=False,
            )
        chat = dict(self.translated.chat_body)
        if stream:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
        return chat


def _speaks(provider, target) -> bool:
    check = getattr(provider, "speaks_responses", None)
    return bool(check is not None and check(target.options))


def _sse(event: dict) -> bytes:
    return b"event: " + str(event.get("type")).encode() + b"\ndata: " + _dumps(event) + b"\n\n"


def _output_text(response: dict) -> str:
    parts = []
    for item in response.get("output") or ():
        if isinstance(item, dict):
            parts.append(str(item.get("arguments") or ""))
            for part in item.get("content") or ():
                if isinstance(part, dict):
                    parts.append(str(part.get("text") or ""))
    return "".join(parts)


# Output items of the client's own tools: the client runs them, the provider bills no call.
CLIENT_TOOL_ITEMS = frozenset({"function_call", "custom_tool_call"})


def built_in_tool_calls(response: dict) -> dict[str, int]:
    """The provider's built-in tool calls in a Response's output, by tool
    (``web_search_call`` is ``web_search``): what is billed per call beside the tokens."""
    counts: dict[str, int] = {}
    for item in response.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        if isinstance(kind, str) and kind.endswith("_call") and kind not in CLIENT_TOOL_ITEMS:
            name = kind.removesuffix("_call")
            counts[name] = counts.get(name, 0) + 1
    return counts


def _usage_or_estimate(call: gateway.ProxyCall, usage, text: str, response: dict) -> dict:
    if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
        usage = dict(usage)
    else:
        call.usage_estimated = True
        usage = {
            "prompt_tokens": call.prompt_tokens_estimate,
            "completion_tokens": count_tokens(text, model=call.model) if text else 0,
        }
    tool_calls = built_in_tool_calls(response)
    if tool_calls:
        usage[pricing.TOOL_CALLS_KEY] = tool_calls
    return usage


async def native_run(
    call: gateway.ProxyCall, native: NativeRequest, store: Callable, *, stream: bool
):
    """The client's response; ``store(response)`` keeps an answer before the client sees
    it. DomainErrors propagate once the call is accounted."""
    with failures_accounted(call, "a native Responses call"):
        plan = await gateway.admit(call)
        call.tokens_saved = 0  # nothing the client sent is changed on this path
        # Nor answered on it: the client's body goes upstream as sent, so a stage's answer to
        # the chat estimate is not served (and the call is billed as it is made), as on the
        # Messages pass-through. A stage that must act on the request asks for translation.
        call.answer, call.answered_by = None, ""
        if stream:
            return await _stream(call, plan, native, store)

        async def operation(provider, target):
            if _speaks(provider, target):
                return native.patch((await provider.responses(target, native.upstream_body)).body)
            result = await provider.chat(target, native.chat_body(stream=False))
            return response_from_chat(
                native.translated,
                result.body,
                response_id=native.response_id,
                created_at=native.created_at,
            )

        response = await gateway.call_upstream(call, plan, operation)
        usage = _usage_or_estimate(call, response.get("usage"), _output_text(response), response)
        call.cost_micros = await accounting.answer_cost_micros(call, usage)
        gateway.run_in_background(accounting.finish(call, usage))
        await store(response)
        return json_response(response, headers=call.response_headers())


async def _translated_events(chunks: AsyncIterator[dict], events: ResponseEvents):
    """A chat stream as Responses events, for a fallback that speaks chat only."""
    try:
        for event in events.start():
            yield event
        async for chunk in chunks:
            for event in events.add(chunk):
                yield event
        closing, final = events.finish()
        for event in closing:
            yield event
        yield final
    finally:
        await chunks.aclose()


async def _stream(call: gateway.ProxyCall, plan, native: NativeRequest, store: Callable):
    async def operation(provider, target):
        if _speaks(provider, target):
            events = provider.responses_stream(target, native.upstream_body)
        else:
            chat = provider.chat_stream(target, native.chat_body(stream=True))
            translator = ResponseEvents(
                native.translated, response_id=native.response_id, created_at=native.created_at
            )
            events = _translated_events(chat, translator)
        # The first event before any byte reaches the client: a failure to start can
        # still be retried or fall back to the next deployment.
        try:
            first = await anext(events)
        except StopAsyncIteration:
            raise UpstreamError(
                "The upstream provider sent an empty stream.", retryable=True
            ) from None
        except BaseException:
            await events.aclose()
            raise
        return first, events

    first, events = await gateway.call_upstream(call, plan, operation)
    response = StreamingHttpResponse(
        _relay(call, native, first, events, store), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    for name, value in call.response_headers().items():
        response[name] = value
    return response


async def _relay(call: gateway.ProxyCall, native: NativeRequest, first, events, store):
    """Each upstream event on to the client as it comes, Response snapshots given the
    proxy's id; the usage of the terminal event accounted however the stream ends."""
    usage = None
    text: list[str] = []
    snapshot: dict = {}
    sequence = 0
    event = first
    try:
        while event is not None:
            kind = event.get("type")
            if isinstance(event.get("response"), dict):
                snapshot = native.patch(event["response"])
                event = {**event, "response": snapshot}
                if kind in TERMINAL_EVENTS:
                    usage = snapshot.get("usage")
                    if kind == "response.failed":
                        call.status_code, call.error_code = 502, "upstream_error"
                    else:
                        await store(snapshot)  # before the client can send its id back
            elif kind in TEXT_DELTAS:
                text.append(str(event.get("delta") or ""))
            elif kind == "error":
                call.status_code, call.error_code = 502, "upstream_error"
            if isinstance(event.get("sequence_number"), int):
                sequence = event["sequence_number"]
            if call.first_token_seconds is None:
                call.first_token_seconds = time.perf_counter() - call.started
            yield _sse(event)
            started = time.perf_counter()
            event = await anext(events, None)
            call.upstream_seconds += time.perf_counter() - started
    except (asyncio.CancelledError, GeneratorExit):
        call.client_disconnected = True
        metrics.STREAMS_DISCONNECTED.inc()
        raise
    except UpstreamError as error:
        # Headers are sent already: the failure travels as the terminal event.
        call.status_code, call.error_code = error.status, error.code
        failed = {
            **(snapshot or native.patch({"object": "response", "output": []})),
            "status": "failed",
            "error": {"code": "server_error", "message": error.message},
        }
        yield _sse({"type": "response.failed", "sequence_number": sequence + 1, "response": failed})
    finally:
        usage = _usage_or_estimate(call, usage, "".join(text), snapshot)
        gateway.run_in_background(_close_and_account(call, events, usage))


async def _close_and_account(call: gateway.ProxyCall, events, usage: dict) -> None:
    try:
        await events.aclose()  # closes the upstream connection: generation stops
    except Exception:
        logger.warning("closing the upstream stream of %s failed", call.request_id)
    await accounting.finish(call, usage)
