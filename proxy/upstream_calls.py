"""The upstream part of a call: the route's deployments in order, retries with backoff and
jitter, fallback, and one deadline over all of it (``REQUEST_DEADLINE_SECONDS``)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from django.conf import settings

from common.errors import RequestTimeout
from proxy import metrics, routing
from proxy.call_tracing import attempt_finished, traced_stream, upstream_span
from proxy.providers import provider_for
from proxy.providers.base import Provider, Target, UpstreamError
from proxy.providers.prompt_cache import with_prompt_cache

if TYPE_CHECKING:
    from proxy.gateway import ProxyCall


def _backoff(attempt: int, retry_after: float | None) -> float:
    ceiling = min(settings.UPSTREAM_BACKOFF_MAX, settings.UPSTREAM_BACKOFF_BASE * 2**attempt)
    delay = random.uniform(ceiling / 2, ceiling)  # jitter keeps retries from synchronising
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _deadline_passed(call: ProxyCall, last_error: UpstreamError | None) -> RequestTimeout:
    seconds = f"{settings.REQUEST_DEADLINE_SECONDS:g}"
    message = f"The upstream did not answer within this request's {seconds}-second deadline."
    if last_error is not None:
        message += f" Last upstream error: {last_error.message}"
    return RequestTimeout(message)


async def _attempt(call: ProxyCall, run: Callable[[], Awaitable]):
    """One upstream attempt, cut off at the request's deadline (``None`` once it passed)."""
    remaining = call.deadline() - time.perf_counter()
    if remaining <= 0:
        return None, True
    timeout = asyncio.timeout(remaining)
    try:
        async with timeout:
            return await run(), False
    except TimeoutError:
        if timeout.expired():
            return None, True
        raise


async def call_upstream(
    call: ProxyCall,
    plan: routing.RoutePlan,
    operation: Callable[[Provider, Target], Awaitable],
):
    """Run ``operation`` on the route's deployments in order, retrying retryable failures,
    all within the request's deadline (``REQUEST_DEADLINE_SECONDS``): past it, a 504.

    Client errors (400, 404, ...) are final; a refused provider key or a deployment
    that keeps failing moves on to the next deployment.
    """
    last_error: UpstreamError | None = None
    for position, deployment in enumerate(routing.attempt_order(plan)):
        provider = provider_for(deployment.provider)
        target = with_prompt_cache(deployment.target(), call.principal)
        for attempt in range(settings.UPSTREAM_MAX_RETRIES + 1):
            started = time.perf_counter()
            attempt_span = upstream_span(call, deployment, position=position, attempt=attempt)
            try:
                with attempt_span:
                    result, expired = await _attempt(
                        call, lambda provider=provider, target=target: operation(provider, target)
                    )
                    attempt_finished(call, result, expired)
            except UpstreamError as error:
                call.upstream_seconds += time.perf_counter() - started
                metrics.UPSTREAM_ERRORS.labels(
                    provider=deployment.provider, status=str(error.upstream_status or 0)
                ).inc()
                last_error = error
                if error.code in ("invalid_request_error", "model_not_found") and (
                    error.upstream_status not in (401, 403)
                ):
                    raise
                if not error.retryable or attempt == settings.UPSTREAM_MAX_RETRIES:
                    break
                delay = _backoff(attempt, error.retry_after)
                if delay > settings.UPSTREAM_BACKOFF_MAX:
                    break  # the upstream asks for a longer pause: try the next deployment
                if time.perf_counter() + delay >= call.deadline():
                    raise _deadline_passed(call, last_error) from error
                await asyncio.sleep(delay)
                continue
            call.upstream_seconds += time.perf_counter() - started
            if expired:
                metrics.UPSTREAM_ERRORS.labels(provider=deployment.provider, status="0").inc()
                routing.deployment_failed(deployment.label)
                raise _deadline_passed(call, last_error)
            routing.deployment_succeeded(deployment.label)
            call.provider = deployment.provider
            call.deployment = deployment.label
            call.upstream_model = deployment.upstream_model
            if position:
                metrics.FALLBACKS.labels(model=call.model).inc()
            return result
        routing.deployment_failed(deployment.label)
    assert last_error is not None
    raise last_error


async def open_stream(call: ProxyCall, plan: routing.RoutePlan, kind: str):
    """Start a stream and wait for its first chunk, so failures before any byte reach
    the client can still be retried or fall back."""

    async def operation(provider: Provider, target: Target):
        iterator = (
            provider.chat_stream(target, call.body)
            if kind == "chat"
            else provider.completions_stream(target, call.body)
        )
        try:
            first = await anext(iterator)
        except StopAsyncIteration:
            raise UpstreamError(
                "The upstream provider sent an empty stream.", retryable=True
            ) from None
        except BaseException:
            await iterator.aclose()
            raise
        return first, iterator

    first, iterator = await call_upstream(call, plan, operation)
    return first, traced_stream(call, first, iterator)
