"""Messages requests to routes that Anthropic alone serves: passed through as they are.

The client already speaks the upstream's format, so nothing is translated: its prompt
cache breakpoints, content blocks and fields reach Anthropic unchanged, and the answer
(or each stream event) comes back as Anthropic sent it. The call still goes through the
pipeline's admission (model access, rate limits, budget, counted on the prompt as chat
would count it), retries and fallback between the route's deployments, and accounting
(cache reads and writes included). Compression and the response cache are off: both work
on chat bodies, and a passed-through request is never edited.
"""

from __future__ import annotations

import asyncio
import json
import logging

from django.http import HttpResponse, StreamingHttpResponse

from accounts.selectors import Principal
from proxy import accounting, gateway, metrics, routing
from proxy.adapters.anthropic_errors import anthropic_status, error_type_for
from proxy.adapters.anthropic_messages import estimate_chat_request
from proxy.adapters.anthropic_stream import encode_event, error_event
from proxy.call_failures import failures_accounted
from proxy.pipeline import registry
from proxy.providers.base import UpstreamError
from proxy.serializers import ChatCompletionRequestSerializer
from proxy.tokens import count_tokens
from proxy.views import new_call, validated

logger = logging.getLogger(__name__)

ENDPOINT = "messages"


async def native_plan(principal: Principal, model: str) -> routing.RoutePlan | None:
    """The route's plan when every deployment of it is Anthropic's, else None (the
    request is translated to chat completions, which every provider takes)."""
    plan = await routing.resolve_route(principal.organization_id, model)
    if (
        plan.routed
        and plan.deployments
        and all(deployment.provider == "anthropic" for deployment in plan.deployments)
    ):
        return plan
    return None


async def stages_require_translation(request, principal: Principal, body: dict) -> bool:
    """Whether a stage must read this request's real text and answer (a PII mask, answer
    rules): the request then goes the translated way, even to an Anthropic route."""
    chat = validated(estimate_chat_request(body), ChatCompletionRequestSerializer)
    return await registry.stages_require_translation(
        new_call(request, principal, "chat.completions", chat)
    )


async def native_run(request, principal: Principal, body: dict):
    """The response for a Messages ``body`` that passed ``NativeMessagesRequestSerializer``.
    DomainErrors propagate once the call is accounted."""
    chat = validated(estimate_chat_request(body), ChatCompletionRequestSerializer)
    call = new_call(request, principal, "chat.completions", chat)
    call.endpoint_label = ENDPOINT
    call.compression_header = "off"
    call.cache_header = "off"
    beta = request.headers.get("anthropic-beta", "")
    with failures_accounted(call, "a native Messages call"):
        plan = await gateway.admit(call)
        call.tokens_saved = 0  # nothing the client sent is changed on this path
        # Nor answered on it: the client's Messages body goes upstream as sent, so a stage's
        # answer to the chat estimate is not served (and the call is billed as it is made).
        call.answer, call.answered_by = None, ""
        if call.stream:
            return await _stream(call, plan, body, beta)

        async def operation(provider, target):
            return await provider.messages(target, body, beta=beta)

        result = await gateway.call_upstream(call, plan, operation)
        gateway.run_in_background(_account_answer(call, result.body))
        response = HttpResponse(result.raw, content_type="application/json")
        for name, value in call.response_headers().items():
            response[name] = value
        return response


def _answer_text(message: dict) -> str:
    parts = []
    for block in message.get("content") or []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif isinstance(block, dict) and "input" in block:
            parts.append(json.dumps(block["input"], ensure_ascii=False))
    return "".join(parts)


async def _account_answer(call: gateway.ProxyCall, message: dict) -> None:
    usage = message.get("usage")
    if not isinstance(usage, dict) or not isinstance(usage.get("output_tokens"), int):
        call.usage_estimated = True
        usage = {
            "prompt_tokens": call.prompt_tokens_estimate,
            "completion_tokens": count_tokens(_answer_text(message), model=call.model),
        }
    await accounting.finish(call, usage)


async def _stream(call: gateway.ProxyCall, plan, body: dict, beta: str):
    async def operation(provider, target):
        # The first event before any byte reaches the client: a failure to start can
        # still be retried or fall back to the next deployment.
        events = provider.messages_stream(target, body, beta=beta)
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
    response = StreamingHttpResponse(_relay(call, first, events), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    for name, value in call.response_headers().items():
        response[name] = value
    return response


async def _relay(call: gateway.ProxyCall, first, events):
    """Each upstream event on to the client as it comes; the usage they carry (input and
    cache counts in ``message_start``, the output count in ``message_delta``) accounted
    however the stream ends."""
    usage: dict = {}
    text: list[str] = []
    finished = False
    event = first
    try:
        while event is not None:
            name, data = event
            if name == "message_start":
                usage.update((data.get("message") or {}).get("usage") or {})
            elif name == "message_delta":
                finished = True
                usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            elif name == "content_block_delta":
                delta = data.get("delta") or {}
                text.append(str(delta.get("text") or delta.get("partial_json") or ""))
            yield encode_event(name, data)
            event = await anext(events, None)
    except (asyncio.CancelledError, GeneratorExit):
        call.client_disconnected = True
        metrics.STREAMS_DISCONNECTED.inc()
        raise
    except UpstreamError as error:
        call.status_code, call.error_code = error.status, error.code
        yield encode_event(*error_event(error_type_for(anthropic_status(error)), error.message))
    finally:
        if not finished:
            # The stream ended before its message_delta: what was produced, counted.
            call.usage_estimated = True
            usage["output_tokens"] = count_tokens("".join(text), model=call.model)
        if not isinstance(usage.get("input_tokens"), int):
            call.usage_estimated = True
            usage["input_tokens"] = call.prompt_tokens_estimate
        gateway.run_in_background(_close_and_account(call, events, usage))


async def _close_and_account(call: gateway.ProxyCall, events, usage: dict) -> None:
    try:
        await events.aclose()  # closes the upstream connection: generation stops
    except Exception:
        logger.warning("closing the upstream stream of %s failed", call.request_id)
    await accounting.finish(call, usage)
