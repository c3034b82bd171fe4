"""Accounting of a finished call: limits and budget settled, the usage event handed to
billing, the metrics, the access line; and the cost the client is told.

A call is finished once, however it ends (answered, failed, abandoned by its client).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from billing import budgets, pricing
from billing.selectors import aprice_for_usage, atool_fees_micros
from billing.usage import ausage_record
from common.access_log import access_log_write
from common.errors import DomainError
from proxy import metrics, ratelimit
from proxy.call_tracing import accounted, accounting_span
from proxy.feed import feed_publish
from proxy.surface.accounting import surface_units

if TYPE_CHECKING:
    from proxy.gateway import ProxyCall

logger = logging.getLogger("proxy.gateway")


async def resolve_usage_price(call: ProxyCall) -> pricing.Price:
    """The price the call's usage is billed at (the served upstream model's), kept on the
    call: the cost told to the client and the access line's use the flush's own rule."""
    if call.usage_price is None:
        call.usage_price = await aprice_for_usage(
            model=call.model, upstream_model=call.upstream_model, at=datetime.now(tz=UTC)
        )
    return call.usage_price


def usage_cost_micros(call: ProxyCall, tokens: pricing.TokenCounts) -> int:
    """What the usage costs the client: nothing on a cache hit, as billed otherwise."""
    if call.cache == "hit" or call.answered_by or call.usage_price is None:
        return 0
    return pricing.tokens_cost_micros(price=call.usage_price, tokens=tokens)


async def tool_fees_micros(call: ProxyCall, tool_calls: dict[str, int]) -> int:
    """What the provider's built-in tool calls cost beside the tokens (``tool:<name>``
    prices); nothing for an answer that reached no upstream."""
    if not tool_calls or call.cache == "hit" or call.answered_by:
        return 0
    return await atool_fees_micros(tool_calls, datetime.now(tz=UTC))


async def answer_cost_micros(call: ProxyCall, usage: dict) -> int:
    """The client's cost of a passed-through answer: its tokens and its tool calls."""
    await resolve_usage_price(call)
    tokens_cost = usage_cost_micros(call, pricing.usage_tokens(usage))
    return tokens_cost + await tool_fees_micros(call, pricing.tool_calls_in_usage(usage))


def with_cost(call: ProxyCall, usage: dict) -> dict:
    """``usage`` with the request's cost in dollars (``cost_usd``), as the client sees it."""
    call.cost_micros = usage_cost_micros(call, pricing.usage_tokens(usage))
    return {**usage, "cost_usd": float(pricing.micros_to_usd(call.cost_micros))}


def _organization_metrics(call: ProxyCall, tokens: pricing.TokenCounts, cost_micros: int) -> None:
    organization = call.principal.organization_slug
    if cost_micros:
        metrics.COST.labels(organization=organization, model=call.model).inc(cost_micros)
    for direction, count in (
        ("prompt", tokens.prompt_tokens),
        ("completion", tokens.completion_tokens),
        ("cached", tokens.cache_read_tokens),
    ):
        if count:
            metrics.ORGANIZATION_TOKENS.labels(organization=organization, direction=direction).inc(
                count
            )
    if call.cache == "hit" and call.usage_price is not None:
        avoided = pricing.tokens_cost_micros(price=call.usage_price, tokens=tokens)
        if avoided:
            metrics.CACHE_SAVED_MICROS.labels(organization=organization).inc(avoided)
    if call.first_token_seconds is not None:
        metrics.TIME_TO_FIRST_TOKEN.labels(endpoint=call.endpoint, cache=call.cache).observe(
            call.first_token_seconds
        )


def _access_line(call: ProxyCall, tokens: pricing.TokenCounts, cost_micros: int) -> None:
    principal = call.principal
    access_log_write(
        status=call.status_code,
        latency_ms=(time.perf_counter() - call.started) * 1000,
        endpoint=call.endpoint_label or call.endpoint,
        organization=principal.organization_slug,
        organization_id=principal.organization_id,
        key_prefix=principal.key_prefix,
        member=principal.username,
        end_user=call.end_user or None,
        tags=list(call.tags) or None,
        model=call.model,
        provider=call.provider or None,
        deployment=call.deployment or None,
        upstream_model=call.upstream_model or None,
        stream=call.stream,
        error_code=call.error_code or None,
        upstream_ms=round(call.upstream_seconds * 1000, 3),
        overhead_ms=round(call.overhead_ms(), 3),
        ttft_ms=(
            round(call.first_token_seconds * 1000, 3)
            if call.first_token_seconds is not None
            else None
        ),
        prompt_tokens=tokens.prompt_tokens,
        completion_tokens=tokens.completion_tokens,
        cached_tokens=tokens.cache_read_tokens,
        cost_usd=pricing.micros_to_usd(cost_micros),
        cache=call.cache,
        cache_tier=call.cache_tier or None,
        tokens_saved=call.tokens_saved,
        usage_estimated=call.usage_estimated or None,
        client_disconnected=call.client_disconnected or None,
        annotations=call.annotations or None,
    )


async def finish(call: ProxyCall, usage: dict | None) -> None:
    """Settle limits and budget with the real numbers and hand the usage event over."""
    if call.finished:
        return
    call.finished = True
    with accounting_span(call):
        tokens, cost_micros = await _finish(call, usage)
        accounted(call, tokens, cost_micros)


async def _finish(call: ProxyCall, usage: dict | None) -> tuple[pricing.TokenCounts, int]:
    tokens = pricing.usage_tokens(usage)
    prompt_tokens, completion_tokens = tokens.prompt_tokens, tokens.completion_tokens
    # Per-unit endpoints (images, audio) and batch results say so in the usage they hand
    # over (``proxy.surface.accounting``); chat's usage has neither key.
    units, batch = surface_units(usage)
    tool_calls = pricing.tool_calls_in_usage(usage)
    fees = 0
    try:
        fees = await tool_fees_micros(call, tool_calls)
    except Exception:
        # The event below carries the counts: the flush prices them again.
        logger.exception("pricing the tool calls of %s failed", call.request_id)
    try:
        if call.admission is not None:
            # A hit was admitted on the estimate too, and gives every token back.
            free = call.cache == "hit" or call.answered_by
            actual_tokens = 0 if free else prompt_tokens + completion_tokens
            await ratelimit.settle_tokens(call.admission, actual_tokens=actual_tokens)
        if call.reservation is not None:
            if call.status_code >= 400 and not (prompt_tokens or completion_tokens):
                await budgets.abudget_release(call.reservation)
            else:
                actual = 0
                if not (call.cache == "hit" or call.answered_by) and call.price is not None:
                    actual = fees + pricing.request_cost_micros(
                        price=call.price, tokens=tokens, units=units, batch=batch
                    )
                await budgets.abudget_settle(call.reservation, actual_micros=actual)
    except Exception:
        # Settling must never lose the usage event below.
        logger.exception("settling limits failed for %s", call.request_id)
    cost_micros = 0
    try:
        if prompt_tokens or completion_tokens:
            await resolve_usage_price(call)
        cost_micros = usage_cost_micros(call, tokens) + fees
        _organization_metrics(call, tokens, cost_micros)
        if call.access is not None:
            _access_line(call, tokens, cost_micros)
    except Exception:
        logger.exception("the access line or metrics of %s failed", call.request_id)
    overhead_ms = call.overhead_ms()
    status = str(call.status_code)
    # An adapter's call (the Responses API run as chat) is labelled as the client called it.
    endpoint = call.endpoint_label or call.endpoint
    metrics.REQUESTS.labels(endpoint=endpoint, model=call.model, status=status).inc()
    if prompt_tokens:
        metrics.TOKENS.labels(direction="prompt", model=call.model).inc(prompt_tokens)
    if completion_tokens:
        metrics.TOKENS.labels(direction="completion", model=call.model).inc(completion_tokens)
    if call.provider and call.upstream_seconds:
        metrics.UPSTREAM_LATENCY.labels(provider=call.provider).observe(call.upstream_seconds)
    metrics.PROXY_OVERHEAD.labels(endpoint=endpoint).observe(overhead_ms / 1000)
    event = {
        "request_id": call.request_id,
        "created_at": datetime.now(tz=UTC).isoformat(),
        "organization_id": call.principal.organization_id,
        "user_id": call.principal.user_id,
        "api_key_id": call.principal.key_id,
        "endpoint": endpoint,
        "model": call.model,
        "upstream_model": call.upstream_model,
        "provider": call.provider,
        "deployment": call.deployment,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cached_tokens": tokens.cache_read_tokens,
        "cache_write_tokens": tokens.cache_write_tokens,
        "status_code": call.status_code,
        "error_code": call.error_code,
        "stream": call.stream,
        "client_disconnected": call.client_disconnected,
        "cache": call.cache,
        "cache_tier": call.cache_tier,
        "tokens_saved": call.tokens_saved,
        "compression_level": call.compression_level,
        "usage_estimated": call.usage_estimated,
        "units": units,
        "batch": batch,
        "tool_calls": tool_calls,
        "end_user": call.end_user,
        "tags": list(call.tags),
        "metadata": call.metadata,
        "annotations": call.annotations,
        "answered_by": call.answered_by,
        "latency_ms": round((time.perf_counter() - call.started) * 1000, 3),
        "upstream_ms": round(call.upstream_seconds * 1000, 3),
        "overhead_ms": round(overhead_ms, 3),
    }
    try:
        await ausage_record(event)
    except Exception:
        logger.exception("could not hand over the usage event %s", call.request_id)
    await feed_publish(event)
    return tokens, cost_micros


async def fail(call: ProxyCall, error: DomainError) -> None:
    call.status_code = error.status
    call.error_code = error.code
    await finish(call, None)
