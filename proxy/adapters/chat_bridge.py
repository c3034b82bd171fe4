"""The chat pipeline for the wire-format adapters (Responses, Messages).

An adapter translates its request into a chat-completions body, runs it here exactly as
``/v1/chat/completions`` would (validation, request controls, admission, compression,
cache, upstream with retries and fallback, one usage event per call), and translates
the answer back. Usage events and metrics carry the adapter's own endpoint label.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from accounts.selectors import Principal
from proxy import accounting, gateway
from proxy.call_failures import failures_accounted
from proxy.pipeline import runner
from proxy.serializers import ChatCompletionRequestSerializer
from proxy.views import new_call, validated

logger = logging.getLogger(__name__)


@dataclass
class ChatRun:
    """A chat call under way: its answer (``body``) or its stream (``chunks``).

    ``chunks`` yields chat.completion.chunk dicts with the usage chunk last, whether or
    not the client asked for usage. Whoever stops reading it early must ``aclose()`` it;
    closing or cancelling it closes the upstream stream and accounts the call.
    A mid-stream upstream failure is raised from it as an ``UpstreamError``.
    """

    call: gateway.ProxyCall
    body: dict | None
    chunks: AsyncIterator[dict] | None
    headers: dict[str, str]


async def chat_run(request, principal: Principal, chat_body: dict, *, endpoint: str) -> ChatRun:
    """Run ``chat_body`` through the chat pipeline; ``endpoint`` labels its usage event.

    A streaming request always gets ``chunks``: an answer given without the upstream (a
    cache hit, a stage's) is replayed through the stages' stream filters, as chat's is.
    DomainErrors propagate once the failed call is accounted, carrying the call's
    headers, so each adapter renders them in its own error format.
    """
    body = validated(chat_body, ChatCompletionRequestSerializer)
    call = new_call(request, principal, "chat.completions", body)
    call.endpoint_label = endpoint
    with failures_accounted(call, endpoint):
        plan = await gateway.admit(call)
        if call.answer is not None:
            if call.stream:
                # Replayed as a live stream is relayed: through the stages' stream filters.
                chunks = gateway.replay_chunks(call, include_usage=True)
                return ChatRun(call=call, body=None, chunks=chunks, headers=call.response_headers())
            usage = call.answer.get("usage")
            answer = await gateway.response_through_stages(call, call.answer, usage)
            gateway.run_in_background(accounting.finish(call, usage))
            return ChatRun(call=call, body=answer, chunks=None, headers=call.response_headers())
        if call.stream:
            call.body = {
                **call.body,
                "stream_options": {
                    **(call.body.get("stream_options") or {}),
                    "include_usage": True,
                },
            }
            first, iterator = await gateway.open_stream(call, plan, "chat")
            chunks = runner.filter_stream(call, gateway.stream_chunks(call, first, iterator))
            return ChatRun(call=call, body=None, chunks=chunks, headers=call.response_headers())

        async def operation(provider, target):
            return await provider.chat(target, call.body)

        result = await gateway.run_json(call, plan, operation)
        return ChatRun(call=call, body=result.body, chunks=None, headers=call.response_headers())
