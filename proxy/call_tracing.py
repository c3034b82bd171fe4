"""The spans of a proxied call and their attributes: OpenTelemetry's GenAI semantic
conventions (``gen_ai.*``) and the proxy's own (``synthlang.*``).

admission -> one ``chat {model}`` client span per upstream attempt (a retry or a fallback is
another span) -> for a stream, ``stream`` while it is relayed -> ``accounting``. All are
no-ops when tracing is off (``common.tracing``). Prompt and completion text go on the spans
as events only for an organization with ``trace_content`` on (docs/decisions/0029).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from common import tracing

if TYPE_CHECKING:
    from billing.pricing import TokenCounts
    from proxy.gateway import ProxyCall
    from proxy.routing import DeploymentPlan

# The conventions' ``gen_ai.operation.name`` for each endpoint; others keep their own name.
OPERATIONS = {
    "chat.completions": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
# ``gen_ai.provider.name`` values the conventions define; the offline provider gets ours.
PROVIDER_NAMES = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "fake": "synthlang.fake",
}
# Content events are cut here: a span is not the place for a 200,000-token document.
CONTENT_MAX_CHARS = 16_384


def operation_name(call: ProxyCall) -> str:
    return OPERATIONS.get(call.endpoint, call.endpoint)


def _content(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text[:CONTENT_MAX_CHARS]


def _prompt(call: ProxyCall):
    body = call.body
    for name in ("messages", "prompt", "input"):
        if name in body:
            return body[name]
    return None


def upstream_span(call: ProxyCall, deployment: DeploymentPlan, *, position: int, attempt: int):
    """The client span of one upstream attempt, named as the conventions ask."""
    if not tracing.enabled():
        return tracing.NO_SPAN
    operation = operation_name(call)
    return tracing.span(
        f"{operation} {deployment.upstream_model}",
        kind="client",
        attributes={
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": PROVIDER_NAMES.get(deployment.provider, deployment.provider),
            "gen_ai.request.model": deployment.upstream_model,
            "synthlang.model": call.model,
            "synthlang.deployment": deployment.label,
            "synthlang.fallback_position": position,
            "synthlang.retry": attempt,
        },
    )


def attempt_finished(call: ProxyCall, result, expired: bool) -> None:
    """What the attempt's answer tells: the model that answered, its usage, and (when the
    organization opted in) the prompt sent and the completion."""
    if not tracing.enabled():
        return
    span_ = tracing.current_span()
    if expired:
        tracing.error(span_, "timeout")
        return
    if call.principal.trace_content:
        prompt = _prompt(call)
        if prompt is not None:
            span_.add_event("gen_ai.content.prompt", {"gen_ai.input.messages": _content(prompt)})
    body = getattr(result, "body", None)
    if not isinstance(body, dict):
        return  # a stream: its ``stream`` span tells the rest
    if isinstance(body.get("model"), str):
        span_.set_attribute("gen_ai.response.model", body["model"])
    if isinstance(body.get("id"), str):
        span_.set_attribute("gen_ai.response.id", body["id"])
    usage_attributes(span_, body.get("usage"))
    choices = body.get("choices")
    if isinstance(choices, list):
        reasons = [c.get("finish_reason") for c in choices if isinstance(c, dict)]
        span_.set_attribute("gen_ai.response.finish_reasons", [r for r in reasons if r])
        if call.principal.trace_content:
            outputs = [c.get("message") or c.get("text") for c in choices if isinstance(c, dict)]
            span_.add_event(
                "gen_ai.content.completion", {"gen_ai.output.messages": _content(outputs)}
            )


def usage_attributes(span_, usage) -> None:
    if not isinstance(usage, dict):
        return
    for source, name in (
        ("prompt_tokens", "gen_ai.usage.input_tokens"),
        ("completion_tokens", "gen_ai.usage.output_tokens"),
    ):
        if isinstance(usage.get(source), int):
            span_.set_attribute(name, usage[source])


def traced_stream(call: ProxyCall, first: dict, iterator: AsyncIterator[dict]):
    """The upstream's stream, relayed inside a ``stream`` span that ends when it does.

    The span is started, not made current: the relay crosses ``yield``s, and a context
    change inside a generator would leak into whoever iterates it."""
    if not tracing.enabled():
        return iterator
    return TracedStream(call, first, iterator)


class TracedStream:
    """An async iterator over the upstream's chunks (not an async generator: one closed
    before its first ``anext`` would never run its ``finally``, and the upstream's stream
    would be left open)."""

    def __init__(self, call: ProxyCall, first: dict, iterator: AsyncIterator[dict]):
        self._iterator = iterator
        self._keep_text = call.principal.trace_content
        self._parts: list[str] = []
        self._chunks = 1  # the first came with the stream's opening
        self._span = tracing.start_span(
            f"stream {call.upstream_model or call.model}",
            attributes={"gen_ai.operation.name": operation_name(call)},
        )
        if isinstance(first.get("model"), str):
            self._span.set_attribute("gen_ai.response.model", first["model"])
        self._note(first)
        self._ended = False

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        try:
            chunk = await anext(self._iterator)
        except StopAsyncIteration:
            self._end()
            raise
        except BaseException as exc:
            tracing.error(self._span, exc)
            self._end()
            raise
        self._chunks += 1
        if chunk.get("usage"):
            usage_attributes(self._span, chunk["usage"])
        self._note(chunk)
        return chunk

    async def aclose(self) -> None:
        self._end()
        await self._iterator.aclose()

    def _note(self, chunk: dict) -> None:
        if not self._keep_text:
            return
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self._parts.append(delta["content"])

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._span.set_attribute("synthlang.stream.chunks", self._chunks)
        if self._keep_text:
            self._span.add_event(
                "gen_ai.content.completion",
                {"gen_ai.output.messages": _content("".join(self._parts))},
            )
        self._span.end()


def traced_admission(admit):
    """Decorator for the pipeline's admission: its span, with what admission decided."""

    @functools.wraps(admit)
    async def wrapper(call: ProxyCall):
        if not tracing.enabled():
            return await admit(call)
        with tracing.span("admission") as span_:
            span_.set_attributes(
                {
                    "gen_ai.request.model": call.model,
                    "synthlang.organization.id": call.principal.organization_id,
                }
            )
            plan = await admit(call)
            span_.set_attributes(
                {
                    "synthlang.cache": call.cache,
                    "synthlang.compression": call.compression_level,
                    "synthlang.tokens_saved": call.tokens_saved,
                }
            )
            return plan

    return wrapper


def accounting_span(call: ProxyCall):
    if not tracing.enabled():
        return tracing.NO_SPAN
    return tracing.span("accounting", attributes={"synthlang.request_id": call.request_id})


def accounted(call: ProxyCall, tokens: TokenCounts, cost_micros: int) -> None:
    """The call's totals on the accounting span: what every backend's LLM view reads."""
    span_ = tracing.current_span()
    if not span_.is_recording():
        return
    attributes = {
        "gen_ai.operation.name": operation_name(call),
        "gen_ai.request.model": call.model,
        "gen_ai.usage.input_tokens": tokens.prompt_tokens,
        "gen_ai.usage.output_tokens": tokens.completion_tokens,
        "synthlang.organization.id": call.principal.organization_id,
        "synthlang.cache": call.cache,
        "synthlang.tokens_saved": call.tokens_saved,
        "synthlang.cost_micros": cost_micros,
        "synthlang.stream": call.stream,
    }
    if call.provider:
        attributes["gen_ai.provider.name"] = PROVIDER_NAMES.get(call.provider, call.provider)
    if call.upstream_model:
        attributes["gen_ai.response.model"] = call.upstream_model
    if tokens.cache_read_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = tokens.cache_read_tokens
    if call.error_code:
        attributes["error.type"] = call.error_code
    span_.set_attributes(attributes)
    if call.status_code >= 500:
        tracing.error(span_, call.error_code or str(call.status_code))
