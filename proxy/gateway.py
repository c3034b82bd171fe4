"""The request pipeline every proxy endpoint runs.

the stages' prepare hooks -> admission (model access, rate limits on a character estimate)
-> the request stages of ``SYNTHLANG_STAGES`` (by default cache, budget, translate,
compression: proxy/stages/, run by proxy/pipeline/runner.py) -> upstream with retries and
fallback, within one deadline -> the response stages -> accounting (proxy/accounting.py).
Nothing on this path waits for work that can happen later: usage events are handed to
billing's buffer, not written here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from django.conf import settings

from accounts.selectors import Principal
from billing import budgets, pricing
from common.access_log import RequestContext
from common.errors import DomainError, InvalidRequest
from proxy import metrics, ratelimit, routing
from proxy.accounting import finish, resolve_usage_price, usage_cost_micros, with_cost
from proxy.call_tracing import traced_admission
from proxy.pipeline import runner
from proxy.providers.base import Provider, Target, UpstreamError, UpstreamResult
from proxy.streaming import StreamAssembler, replay_chat_completion
from proxy.tokens import (
    count_tokens,
    estimate_prompt_tokens,
    prompt_chars,
    usage_estimate,
    usage_is_missing,
)
from proxy.upstream_calls import _backoff, call_upstream, open_stream  # noqa: F401 - re-exported

logger = logging.getLogger(__name__)

CACHE_CONTROLS = ("off", "refresh")

# Accounting of abandoned streams runs after the response task is gone; keep a
# reference so the event loop does not drop the task before it finishes.
_background: set[asyncio.Task] = set()


def run_in_background(coroutine: Awaitable) -> asyncio.Task:
    task = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def call_settled(call: ProxyCall) -> None:
    """Wait for the call's own work after its answer (its accounting, the cache store):
    for the proxy's own calls, whose caller may end the event loop as soon as it returns."""
    while call.after_answer:
        await asyncio.gather(*call.after_answer.copy(), return_exceptions=True)
        call.after_answer = [task for task in call.after_answer if not task.done()]


@dataclass
class ProxyCall:
    """One client request on its way through the proxy, and what it cost."""

    principal: Principal
    request_id: str
    endpoint: str  # "chat.completions" | "completions" | "embeddings"
    model: str
    body: dict
    stream: bool = False
    client_wants_usage: bool = False
    compression_header: str = ""
    cache_header: str = ""
    started: float = field(default_factory=time.perf_counter)
    upstream_seconds: float = 0.0
    provider: str = ""
    deployment: str = ""
    upstream_model: str = ""
    compression_level: str = "off"
    tokens_saved: int = 0
    cache: str = "off"
    cache_tier: str = ""
    status_code: int = 200
    error_code: str = ""
    client_disconnected: bool = False
    prompt_tokens_estimate: int = 0
    price: pricing.Price | None = None
    admission: ratelimit.Admission | None = None
    reservation: budgets.Reservation | None = None
    finished: bool = False
    usage_estimated: bool = False  # the upstream sent no usage: counted by the tokenizer
    prompt_chars: int = 0  # characters of prompt text: what decides how much work is cheap

    def deadline(self) -> float:
        """When the upstream work must be over (``time.perf_counter`` clock)."""
        return self.started + settings.REQUEST_DEADLINE_SECONDS

    # The client's request when this call writes its access line (the API views' calls;
    # the proxy's own calls, such as the cache's verifier, write none).
    access: RequestContext | None = None
    # Attribution (proxy/attribution.py): OpenAI's ``user``, ``metadata`` and the tags header.
    end_user: str = ""
    metadata: dict = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    first_token_seconds: float | None = None  # a stream's first chunk, from ``started``
    usage_price: pricing.Price | None = None  # what the answer is billed at, once known
    cost_micros: int | None = None  # the client's cost, told in a header or the usage chunk

    # The endpoint the client called, when an adapter runs it as another (the Responses
    # API as chat): the label of its usage event and metrics. Empty: ``endpoint``.
    endpoint_label: str = ""

    # The stages (proxy/pipeline): each one's per-call state and what operators must see
    # of its work (copied into the usage event and the access line); the stages whose
    # on_request ran, in order; the answer one of them (or the cache) gave instead of the
    # upstream, and who gave it.
    stage_state: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    # The client's ``x-synthlang-*`` request headers, names lower-cased: the controls a
    # stage reads (``x-synthlang-pii``).
    headers: dict = field(default_factory=dict)
    stages_ran: tuple = ()  # the stages taking part, set by the runner's on_request
    answer: dict | None = None
    answered_by: str = ""
    route_plan: routing.RoutePlan | None = None  # set by admission, for the stages
    completion_allowance: int = 0  # the completion tokens admission counted on
    after_answer: list = field(default_factory=list)  # its tasks that outlive the answer

    def overhead_ms(self) -> float:
        return max((time.perf_counter() - self.started - self.upstream_seconds) * 1000, 0.0)

    def response_headers(self) -> dict[str, str]:
        headers = {
            "x-synthlang-cache": self.cache,
            "x-synthlang-tokens-saved": str(self.tokens_saved),
            "x-synthlang-overhead-ms": f"{self.overhead_ms():.2f}",
            "x-synthlang-compression": self.compression_level,
        }
        if self.cost_micros is not None:
            headers["x-synthlang-cost-usd"] = pricing.micros_to_usd(self.cost_micros)
        if self.admission is not None:
            headers.update(self.admission.headers)
        return headers


# --- Request controls ----------------------------------------------------------------


def cache_control_for(header: str) -> str:
    control = header.strip().lower()
    if control and control not in CACHE_CONTROLS:
        raise InvalidRequest(
            "x-synthlang-cache must be 'off' or 'refresh'.", param="x-synthlang-cache"
        )
    return control


def _max_tokens(body: dict) -> int:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return value if isinstance(value, int) else settings.DEFAULT_COMPLETION_ESTIMATE


# --- Admission ------------------------------------------------------------------------


@traced_admission
async def admit(call: ProxyCall) -> routing.RoutePlan:
    """Everything that may refuse the request happens before any upstream call, and before
    any work whose cost grows with the prompt (docs/decisions/0019).

    The stages' prepare hooks; model access and the route; the rate limits, counted on a
    character estimate of the prompt; then the request stages in list order
    (``SYNTHLANG_STAGES``: by default the cache, whose hit answers and gives its tokens
    back, the budget reserved on the same estimate, translation and compression, which
    counts the prompt exactly). Limits and budget are settled to the upstream's real usage
    afterwards. An answer given by a stage is left in ``call.answer``.
    """
    await runner.run_prepare(call)
    call.principal.check_model(call.model)
    plan = await routing.resolve_route(call.principal.organization_id, call.model)
    call.route_plan = plan
    call.prompt_chars = prompt_chars(endpoint=call.endpoint, body=call.body)
    call.prompt_tokens_estimate = estimate_prompt_tokens(endpoint=call.endpoint, body=call.body)
    call.completion_allowance = 0 if call.endpoint == "embeddings" else _max_tokens(call.body)
    call.admission = await ratelimit.admit(
        call.principal, tokens=call.prompt_tokens_estimate + call.completion_allowance
    )
    call.answer = await runner.run_on_request(call)
    return plan


# --- Streams ---------------------------------------------------------------------------


def _sse(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


async def stream_chunks(
    call: ProxyCall, first: dict, iterator: AsyncIterator[dict]
) -> AsyncIterator[dict]:
    """The upstream's chunks one by one, without buffering, the usage chunk included.

    However the stream ends (exhausted, closed or cancelled because the client hung up,
    or an upstream failure, which is re-raised), the upstream request is closed and what
    was produced so far is accounted. A stream that finished cleanly is stored in the
    cache; an incomplete one never is. A consumer that stops early must ``aclose()`` it.
    """
    assembler = StreamAssembler()
    chunk: dict | None = first
    completed = False
    try:
        while chunk is not None:
            assembler.add(chunk)
            if call.first_token_seconds is None:
                call.first_token_seconds = time.perf_counter() - call.started
            yield chunk
            started = time.perf_counter()
            chunk = await anext(iterator, None)
            call.upstream_seconds += time.perf_counter() - started
        completed = True
    except (asyncio.CancelledError, GeneratorExit):
        call.client_disconnected = True
        metrics.STREAMS_DISCONNECTED.inc()
        raise
    except UpstreamError as error:
        call.status_code, call.error_code = error.status, error.code
        raise
    finally:
        run_in_background(_close_and_finish(call, iterator, assembler, completed))


async def relay_stream(
    call: ProxyCall, first: dict, iterator: AsyncIterator[dict], encode: Callable[[dict], bytes]
) -> AsyncIterator[bytes]:
    """Chat's SSE framing of ``stream_chunks``.

    The proxy always asked the upstream for usage; the usage chunk reaches the client
    only if the client asked for it.
    """
    chunks = runner.filter_stream(call, stream_chunks(call, first, iterator))
    try:
        async for chunk in chunks:
            if chunk.get("usage"):
                if not chunk.get("choices") and not call.client_wants_usage:
                    continue
                if not call.client_wants_usage:
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}
                else:
                    chunk = {**chunk, "usage": with_cost(call, chunk["usage"])}
            elif call.client_wants_usage and "usage" not in chunk:
                chunk = {**chunk, "usage": None}
            yield _sse(encode(chunk))
        yield b"data: [DONE]\n\n"
    except UpstreamError as error:
        # Headers are sent already: the error travels as a stream event, as OpenAI does.
        yield _sse(encode(stream_error_payload(error)))
    finally:
        # Closed here, not left to the garbage collector, so a client that hangs up while
        # this generator waits at a ``yield`` is accounted at once.
        await chunks.aclose()


def stream_error_payload(error: UpstreamError) -> dict:
    return {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": None,
            "code": error.code,
        }
    }


async def _close_and_finish(
    call: ProxyCall, iterator, assembler: StreamAssembler, completed: bool
) -> None:
    try:
        await iterator.aclose()  # closes the upstream connection: generation stops
    except Exception:
        logger.warning("closing the upstream stream of %s failed", call.request_id)
    usage = assembler.usage
    if usage is None:
        # The stream ended before the upstream's usage chunk: count what was produced.
        call.usage_estimated = True
        text = assembler.text()
        usage = {
            "prompt_tokens": call.prompt_tokens_estimate,
            "completion_tokens": count_tokens(text, model=call.model) if text else 0,
        }
    if completed and runner.wants_complete(call):
        try:
            body = assembler.chat_completion()
            if body is not None:
                await runner.run_on_complete(call, body)
        except Exception:
            # A stage's failure after the answer must never lose the usage event below.
            logger.exception("the stages' on_complete of %s failed", call.request_id)
    await finish(call, usage)


class _ReplayedChunks:
    """The iterator ``replay_chunks`` returns. Not an async generator: closing one that
    was never iterated (the client left before the first chunk was asked for) must still
    account the call, and a generator that never started never runs its ``finally``."""

    def __init__(self, call: ProxyCall, chunks: AsyncIterator[dict]) -> None:
        self.call, self.chunks, self.closed = call, chunks, False

    def __aiter__(self):
        return self

    async def __anext__(self) -> dict:
        try:
            chunk = await anext(self.chunks)
        except StopAsyncIteration:
            await self.aclose()
            raise
        if self.call.first_token_seconds is None:
            self.call.first_token_seconds = time.perf_counter() - self.call.started
        return chunk

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.chunks.aclose()
        finally:
            run_in_background(finish(self.call, self.call.answer.get("usage")))


def replay_chunks(call: ProxyCall, *, include_usage: bool) -> AsyncIterator[dict]:
    """An answer given without the upstream (a cache hit, a stage's answer) as the chunks
    of a stream, through the stages' stream filters as a live stream's are: chat's framing
    and every adapter's replay read this one, so a filter (the PII restore, a deny rule
    cutting the answer) acts on a replay in every wire format. Closing it (or reading it
    to the end) accounts the call, as closing ``stream_chunks`` does."""

    async def replayed():
        for chunk in replay_chat_completion(call.answer, include_usage=include_usage):
            yield chunk

    return _ReplayedChunks(call, runner.filter_stream(call, replayed()))


def replay_answer(call: ProxyCall, encode: Callable[[dict], bytes]) -> AsyncIterator[bytes]:
    """Chat's SSE framing of ``replay_chunks``, for a streaming client."""

    async def events():
        chunks = replay_chunks(call, include_usage=call.client_wants_usage)
        try:
            async for chunk in chunks:
                if chunk.get("usage"):
                    chunk = {**chunk, "usage": with_cost(call, chunk["usage"])}
                yield _sse(encode(chunk))
            yield b"data: [DONE]\n\n"
        finally:
            await chunks.aclose()

    return events()


async def response_through_stages(call: ProxyCall, body: dict, usage: dict | None) -> dict:
    """``body`` after the response stages. A stage that refuses it fails the call, whose
    usage is still accounted, under the refusal's status: scheduled here, first, so it is
    the call's one usage event."""
    try:
        return await runner.run_on_response(call, body)
    except DomainError as error:
        call.status_code, call.error_code = error.status, error.code
        call.after_answer.append(run_in_background(finish(call, usage)))
        raise


async def run_json(
    call: ProxyCall,
    plan: routing.RoutePlan,
    operation: Callable[[Provider, Target], Awaitable[UpstreamResult]],
) -> UpstreamResult:
    result = await call_upstream(call, plan, operation)
    upstream_body = result.body
    usage = result.body.get("usage")
    if usage_is_missing(usage):
        usage = usage_estimate(
            body=result.body, prompt_tokens=call.prompt_tokens_estimate, model=call.model
        )
        call.usage_estimated = True
    # The cost goes out in the answer's headers: priced now (the price table is in memory).
    await resolve_usage_price(call)
    call.cost_micros = usage_cost_micros(call, pricing.usage_tokens(usage))

    async def after():
        try:
            # What the upstream said, before the response stages: they run again on a hit.
            await runner.run_on_complete(call, upstream_body)
        except Exception:
            logger.exception("the stages' on_complete of %s failed", call.request_id)
        await finish(call, usage)

    if call.stages_ran:
        body = await response_through_stages(call, upstream_body, usage)
        if body is not upstream_body:
            # The upstream's own bytes no longer say what the client gets.
            result = UpstreamResult(body=body, status=result.status, headers=result.headers)
    call.after_answer.append(run_in_background(after()))
    return result
