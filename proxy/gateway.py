"""The request pipeline every proxy endpoint runs.

admission (model access, rate limits on a character estimate) -> cache -> budget ->
compression -> upstream with retries and fallback, within one deadline -> accounting
(proxy/accounting.py). Nothing on this path waits for work that can happen later: usage
events are handed to billing's buffer, not written here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings

from accounts.selectors import Principal
from billing import budgets, pricing
from billing.selectors import aprice_for_models
from common.access_log import RequestContext
from common.errors import InvalidRequest
from proxy import metrics, ratelimit, response_cache, routing, translation
from proxy.accounting import finish, resolve_usage_price, usage_cost_micros, with_cost
from proxy.call_tracing import traced_admission
from proxy.providers.base import Provider, Target, UpstreamError, UpstreamResult
from proxy.streaming import StreamAssembler, replay_chat_completion
from proxy.synthlang.engine import compress_messages, compress_text
from proxy.tokens import (
    count_message_tokens,
    count_tokens,
    estimate_prompt_tokens,
    prompt_chars,
    usage_estimate,
    usage_is_missing,
)
from proxy.upstream_calls import _backoff, call_upstream, open_stream  # noqa: F401 - re-exported

logger = logging.getLogger(__name__)

COMPRESSION_LEVELS = ("off", "low", "medium", "high")
CACHE_CONTROLS = ("off", "refresh")

# Accounting of abandoned streams runs after the response task is gone; keep a
# reference so the event loop does not drop the task before it finishes.
_background: set[asyncio.Task] = set()


def run_in_background(coroutine: Awaitable) -> None:
    task = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


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
    cache_lookup: response_cache.CacheLookup = response_cache.OFF
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


def compression_level_for(principal: Principal, header: str) -> str:
    """Header, then the organization's setting, then the platform default."""
    if header:
        level = header.strip().lower()
        if level not in COMPRESSION_LEVELS:
            raise InvalidRequest(
                f"x-synthlang-compression must be one of {', '.join(COMPRESSION_LEVELS)}.",
                param="x-synthlang-compression",
            )
        return level
    if principal.compression_level:
        return principal.compression_level
    return settings.SYNTHLANG_DEFAULT_LEVEL if settings.USE_SYNTHLANG else "off"


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


# Below this many characters, compression and counting take well under a millisecond and
# run on the event loop; above it they run on a pool thread, so the loop keeps serving others.
OFF_LOOP_PROMPT_CHARS = 32_768


def _compress_blocking(call: ProxyCall, level: str) -> int | None:
    """Compress the request in place; returns its prompt tokens when compression had to
    count them anyway (so they are not counted a second time)."""
    prompt_tokens = None
    if call.endpoint == "chat.completions":
        messages, stats = compress_messages(
            call.body["messages"],
            level=level,
            model=call.model,
            roles=call.principal.compression_roles or ("system", "user"),
            tool_results=call.principal.compression_tool_results,
        )
        if stats.tokens_saved > 0:
            call.body = {**call.body, "messages": messages}
            call.tokens_saved += stats.tokens_saved
        prompt_tokens = stats.tokens_after
    elif call.endpoint == "completions" and isinstance(call.body.get("prompt"), str):
        result = compress_text(call.body["prompt"], level=level, model=call.model)
        if result.tokens_saved > 0:
            call.body = {**call.body, "prompt": result.text}
            call.tokens_saved += result.tokens_saved
        prompt_tokens = result.tokens_after
    return prompt_tokens


def _prompt_tokens(call: ProxyCall) -> int:
    if call.endpoint == "chat.completions":
        return count_message_tokens(call.body["messages"], model=call.model)
    field_name = "prompt" if call.endpoint == "completions" else "input"
    value = call.body.get(field_name)
    if isinstance(value, str):
        return count_tokens(value, model=call.model)
    total = 0
    for item in value or []:
        total += (
            count_tokens(item, model=call.model)
            if isinstance(item, str)
            else (len(item) if isinstance(item, list) else 1)
        )
    return total


def _compress_and_count_blocking(call: ProxyCall, level: str) -> int:
    counted = _compress_blocking(call, level) if level != "off" else None
    return counted if counted is not None else _prompt_tokens(call)


async def _compress_and_count(call: ProxyCall) -> None:
    """Compression and the exact prompt count, sized to the prompt: inline when small, on a
    pool thread when large, skipped beyond ``LARGE_PROMPT_CHARS`` (the estimate stands)."""
    level = "off"
    if call.endpoint != "embeddings":
        level = compression_level_for(call.principal, call.compression_header)
    if call.prompt_chars > settings.LARGE_PROMPT_CHARS:
        call.compression_level = "off"
        metrics.COMPRESSION_SKIPPED.inc()
        return
    call.compression_level = level
    if call.prompt_chars > OFF_LOOP_PROMPT_CHARS:
        counted = await asyncio.to_thread(_compress_and_count_blocking, call, level)
    else:
        counted = _compress_and_count_blocking(call, level)
    call.prompt_tokens_estimate = counted
    if call.tokens_saved:
        metrics.COMPRESSION_TOKENS_SAVED.labels(level=level).inc(call.tokens_saved)


@traced_admission
async def admit(call: ProxyCall) -> routing.RoutePlan:
    """Everything that may refuse the request happens before any upstream call, and before
    any work whose cost grows with the prompt (docs/decisions/0019).

    The rate limits count a character estimate of the prompt; the cache is looked up next
    (it skips prompts above ``CACHE_MAX_ENTRY_CHARS``), and a hit gives its tokens back:
    it costs one request, no tokens and no budget. Then the budget is reserved on the same
    estimate, and only then is the request compressed and counted exactly. Limits and
    budget are settled to the upstream's real usage afterwards.
    """
    call.principal.check_model(call.model)
    plan = await routing.resolve_route(call.principal.organization_id, call.model)
    call.prompt_chars = prompt_chars(endpoint=call.endpoint, body=call.body)
    call.prompt_tokens_estimate = estimate_prompt_tokens(endpoint=call.endpoint, body=call.body)
    completion_allowance = 0 if call.endpoint == "embeddings" else _max_tokens(call.body)
    call.admission = await ratelimit.admit(
        call.principal, tokens=call.prompt_tokens_estimate + completion_allowance
    )
    if call.endpoint == "chat.completions":
        call.cache_lookup = await response_cache.cache_lookup(
            principal=call.principal, body=call.body, control=call.cache_header
        )
        call.cache = call.cache_lookup.status
        call.cache_tier = call.cache_lookup.tier
        metrics.CACHE_LOOKUPS.labels(result=call.cache, tier=call.cache_tier or "-").inc()
        if call.cache == "hit":
            return plan
    call.price = await aprice_for_models(
        [call.model, *(deployment.upstream_model for deployment in plan.deployments)],
        datetime.now(tz=UTC),
    )
    estimate = pricing.estimate_cost_micros(
        price=call.price,
        prompt_tokens=call.prompt_tokens_estimate,
        max_tokens=completion_allowance,
    )
    try:
        call.reservation = await budgets.abudget_reserve(
            organization_id=call.principal.organization_id,
            user_id=call.principal.user_id,
            api_key_id=call.principal.key_id,
            estimate_micros=estimate,
            price=call.price,
            model=call.model,
        )
    except budgets.BudgetExceeded as error:
        metrics.BUDGET_REFUSALS.labels(scope=getattr(error, "scope", "") or "other").inc()
        raise
    except budgets.ModelNotPriced:
        metrics.BUDGET_REFUSALS.labels(scope="unpriced").inc()
        raise
    if call.endpoint == "chat.completions" and settings.SYNTHLANG_TRANSLATE:
        messages, saved = await translation.apply_translation(
            organization_id=call.principal.organization_id,
            messages=call.body["messages"],
            model=call.model,
        )
        if saved > 0:
            call.body = {**call.body, "messages": messages}
            call.tokens_saved += saved
    await _compress_and_count(call)
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
    chunks = stream_chunks(call, first, iterator)
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
    if completed and call.endpoint == "chat.completions":
        body = assembler.chat_completion()
        if body is not None:
            await store_in_cache(call, body)
    await finish(call, usage)


async def store_in_cache(call: ProxyCall, body: dict) -> None:
    try:
        await response_cache.cache_store(call.cache_lookup, response=body)
    except Exception:
        logger.exception("storing %s in the cache failed", call.request_id)


def replay_hit(call: ProxyCall, encode: Callable[[dict], bytes]) -> AsyncIterator[bytes]:
    """A cache hit for a streaming client: the stored answer as a proper SSE stream."""

    async def events():
        try:
            for chunk in replay_chat_completion(
                call.cache_lookup.response, include_usage=call.client_wants_usage
            ):
                if chunk.get("usage"):
                    chunk = {**chunk, "usage": with_cost(call, chunk["usage"])}
                if call.first_token_seconds is None:
                    call.first_token_seconds = time.perf_counter() - call.started
                yield _sse(encode(chunk))
            yield b"data: [DONE]\n\n"
        finally:
            run_in_background(finish(call, call.cache_lookup.response.get("usage")))

    return events()


async def run_json(
    call: ProxyCall,
    plan: routing.RoutePlan,
    operation: Callable[[Provider, Target], Awaitable[UpstreamResult]],
) -> UpstreamResult:
    result = await call_upstream(call, plan, operation)
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
        if call.endpoint == "chat.completions":
            await store_in_cache(call, result.body)
        await finish(call, usage)

    run_in_background(after())
    return result
