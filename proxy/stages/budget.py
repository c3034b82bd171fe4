"""The budget reservation as a stage: the request's estimated cost is reserved against
every budget that applies, or the request is refused (a 429 with OpenAI's
``insufficient_quota``, or a 403 for a model with no price). Settled to the real usage when
the call finishes (proxy/accounting.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from billing import budgets, pricing
from billing.selectors import aprice_for_models
from proxy import metrics
from proxy.pipeline.stage import Stage


class BudgetStage(Stage):
    name = "budget"
    endpoints = frozenset({"chat.completions", "completions", "embeddings"})

    async def on_request(self, call) -> None:
        plan = call.route_plan
        call.price = await aprice_for_models(
            [call.model, *(deployment.upstream_model for deployment in plan.deployments)],
            datetime.now(tz=UTC),
        )
        estimate = pricing.estimate_cost_micros(
            price=call.price,
            prompt_tokens=call.prompt_tokens_estimate,
            max_tokens=call.completion_allowance,
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
