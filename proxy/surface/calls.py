"""Admission, upstream and accounting for the surface endpoints, on the gateway's parts.

Chat measures a request in prompt tokens plus a completion allowance; these endpoints
measure theirs in what they bill (the input's tokens, images asked for, characters to
speak), so admission takes the measure from the caller and then does what chat does:
model access, rate limits, the price and a budget reservation. Upstream calls go through
``gateway.call_upstream`` (retries and fallback) and every call, however it ends, leaves
one usage event through ``accounting.finish``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from billing import budgets, pricing
from billing.selectors import aprice_for_models
from common.errors import DomainError, InvalidRequest
from proxy import accounting, gateway, ratelimit, routing

logger = logging.getLogger(__name__)


async def admit(
    call: gateway.ProxyCall, *, prompt_tokens: int, units: int = 0, completion_allowance: int = 0
) -> routing.RoutePlan:
    """Everything that may refuse the request, before any upstream call."""
    call.principal.check_model(call.model)
    plan = await routing.resolve_route(call.principal.organization_id, call.model)
    call.prompt_tokens_estimate = prompt_tokens
    call.admission = await ratelimit.admit(
        call.principal, tokens=prompt_tokens + completion_allowance
    )
    call.price = await aprice_for_models(
        [call.model, *(deployment.upstream_model for deployment in plan.deployments)],
        datetime.now(tz=UTC),
    )
    estimate = pricing.estimate_cost_micros(
        price=call.price, prompt_tokens=prompt_tokens, max_tokens=completion_allowance
    ) + pricing.units_cost_micros(price=call.price, units=units)
    call.reservation = await budgets.abudget_reserve(
        organization_id=call.principal.organization_id,
        user_id=call.principal.user_id,
        api_key_id=call.principal.key_id,
        estimate_micros=estimate,
        price=call.price,
        model=call.model,
    )
    return plan


async def upstream(call: gateway.ProxyCall, plan: routing.RoutePlan, operation: Callable):
    """``operation(provider, target)`` on the route's deployments, with retries."""
    return await gateway.call_upstream(call, plan, operation)


def account(call: gateway.ProxyCall, usage: dict) -> None:
    """Settle and record the call after the response has left."""
    gateway.run_in_background(accounting.finish(call, usage))


def account_failure(call: gateway.ProxyCall, error: DomainError) -> None:
    """The failed call's usage event, and its rate-limit headers on the error."""
    error.synthlang_accounted = True
    gateway.run_in_background(accounting.fail(call, error))
    error.headers = {**call.response_headers(), **error.headers}


async def accounted(call: gateway.ProxyCall, work: Callable[[], Awaitable]):
    """Run ``work`` (admission, upstream, response); a failure is accounted like chat's."""
    try:
        return await work()
    except DomainError as error:
        account_failure(call, error)
        raise
    except asyncio.CancelledError:
        call.client_disconnected = True
        call.status_code, call.error_code = 499, "client_closed_request"
        gateway.run_in_background(accounting.finish(call, None))
        raise
    except Exception as exc:
        logger.exception("unexpected error in %s", call.endpoint)
        failure = DomainError()
        account_failure(call, failure)
        raise failure from exc


def provider_method(name: str, *args, **kwargs) -> Callable:
    """The upstream operation ``provider.<name>(target, *args, **kwargs)``; a provider
    without that endpoint (Anthropic has no moderations) is the client's 400."""

    async def operation(provider, target):
        method = getattr(provider, name, None)
        if method is None:
            raise InvalidRequest(
                f"The model is served by the '{provider.name}' provider, which has no "
                f"{name.replace('_', ' ')} endpoint.",
                param="model",
            )
        return await method(target, *args, **kwargs)

    return operation
