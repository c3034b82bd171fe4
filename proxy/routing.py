"""From a public model name to the ordered deployments that may serve it.

Routes change rarely and are read on every request, so each process keeps them
for ``ROUTE_CACHE_SECONDS``. Organizations' provider keys stay encrypted in that cache and
are decrypted only when a call is made; the platform's key (OPENAI_API_KEY) is read from the
settings then, so no plan holds a key in plaintext.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from django.conf import settings

from accounts.crypto import decrypt_secret
from accounts.models import ProviderCredential
from accounts.selectors import provider_credential_for
from common.db import run_in_db_thread
from common.local_state import local_state_register
from common.ttlcache import TTLCache
from proxy.models import Deployment, ModelRoute
from proxy.providers.base import Target


@dataclass(frozen=True)
class DeploymentPlan:
    provider: str
    upstream_model: str
    base_url: str = ""
    encrypted_key: str = field(default="", repr=False)
    options: dict = field(default_factory=dict, hash=False)
    weight: int = 1
    priority: int = 0
    deployment_id: int | None = None
    # The platform's own key (OPENAI_API_KEY): read from the settings at call time, where it
    # already lives in plaintext, so the plan holds no copy and no decryption is needed.
    platform_key: bool = False
    # Which stored credential answers, and whether an organization owns it: answers from an
    # organization's own key are never shared with another tenant (response_cache.scope).
    credential_id: int | None = None
    organization_owned: bool = False

    @property
    def label(self) -> str:
        suffix = f"#{self.deployment_id}" if self.deployment_id else ""
        return f"{self.provider}/{self.upstream_model}{suffix}"

    def _api_key(self) -> str:
        if self.platform_key:
            return settings.OPENAI_API_KEY
        return decrypt_secret(self.encrypted_key) if self.encrypted_key else ""

    def target(self) -> Target:
        return Target(
            provider=self.provider,
            upstream_model=self.upstream_model,
            base_url=self.base_url,
            api_key=self._api_key(),
            options=self.options,
            label=self.label,
        )


@dataclass(frozen=True)
class RoutePlan:
    model: str
    deployments: tuple[DeploymentPlan, ...]
    routed: bool  # False: the default provider under the model's own name


# --- Deployment health: skip a deployment that keeps failing for a cool-down ----------

_failures: dict[str, tuple[int, float]] = {}  # label -> (consecutive failures, cooled until)


def deployment_failed(label: str) -> None:
    count, _ = _failures.get(label, (0, 0.0))
    count += 1
    until = 0.0
    if count >= settings.DEPLOYMENT_FAILURE_THRESHOLD:
        until = time.monotonic() + settings.DEPLOYMENT_COOLDOWN_SECONDS
    _failures[label] = (count, until)


def deployment_succeeded(label: str) -> None:
    _failures.pop(label, None)


def cooling_down(label: str) -> bool:
    _, until = _failures.get(label, (0, 0.0))
    return until > time.monotonic()


def reset_deployment_health() -> None:
    _failures.clear()


local_state_register("routing:deployment-health", reset_deployment_health, redis_twin=False)


def attempt_order(plan: RoutePlan) -> list[DeploymentPlan]:
    """Priorities in order; inside one, a weighted random order; cooled-down ones last."""
    ordered: list[DeploymentPlan] = []
    for priority in sorted({d.priority for d in plan.deployments}):
        group = [d for d in plan.deployments if d.priority == priority]
        # Weighted shuffle: sort by a random key scaled by weight (Efraimidis-Spirakis).
        group.sort(key=lambda d: random.random() ** (1.0 / max(d.weight, 1)), reverse=True)
        ordered.extend(group)
    healthy = [d for d in ordered if not cooling_down(d.label)]
    # When everything is cooling down, trying is better than refusing outright.
    return healthy + [d for d in ordered if d not in healthy]


# --- Resolution ------------------------------------------------------------------------


def _credential_plan(credential: ProviderCredential | None, default_base_url: str) -> dict:
    if credential is None:
        return {"base_url": default_base_url, "encrypted_key": "", "options": {}}
    return {
        "base_url": credential.base_url or default_base_url,
        "encrypted_key": credential.encrypted_key,
        "options": dict(credential.options),
        "credential_id": credential.pk,
        "organization_owned": credential.organization_id is not None,
    }


def default_plan(organization_id: int, model: str) -> DeploymentPlan:
    """The default provider: OpenAI-compatible when a key is configured, else the fake."""
    credential = provider_credential_for(organization_id=organization_id, provider="openai")
    if credential is not None:
        return DeploymentPlan(
            provider="openai",
            upstream_model=model,
            **_credential_plan(credential, settings.OPENAI_BASE_URL),
        )
    if settings.OPENAI_API_KEY:
        return DeploymentPlan(
            provider="openai",
            upstream_model=model,
            base_url=settings.OPENAI_BASE_URL,
            platform_key=True,
        )
    return DeploymentPlan(provider="fake", upstream_model=model)


def _deployment_plan(deployment: Deployment, organization_id: int) -> DeploymentPlan:
    credential = deployment.credential
    if credential is None and deployment.provider != "fake":
        credential = provider_credential_for(
            organization_id=organization_id, provider=deployment.provider
        )
    default_base = settings.OPENAI_BASE_URL if deployment.provider == "openai" else ""
    return DeploymentPlan(
        provider=deployment.provider,
        upstream_model=deployment.upstream_model,
        weight=deployment.weight,
        priority=deployment.priority,
        deployment_id=deployment.pk,
        **_credential_plan(credential, default_base),
    )


def resolve_route_sync(organization_id: int, model: str) -> RoutePlan:
    routes = {
        route.organization_id: route
        for route in ModelRoute.objects.visible_to(organization_id).filter(
            public_name=model, enabled=True
        )
    }
    route = routes.get(organization_id) or routes.get(None)
    if route is None:
        return RoutePlan(
            model=model, deployments=(default_plan(organization_id, model),), routed=False
        )
    deployments = tuple(
        _deployment_plan(deployment, organization_id)
        for deployment in route.deployments.filter(enabled=True).select_related("credential")
    )
    return RoutePlan(model=model, deployments=deployments, routed=True)


_route_cache: TTLCache[RoutePlan] = TTLCache()


def route_cache_forget() -> None:
    _route_cache.clear()


local_state_register("routing:routes", route_cache_forget, redis_twin=False)


async def resolve_route(organization_id: int, model: str) -> RoutePlan:
    return await _route_cache.get_or_load(
        (organization_id, model),
        lambda: run_in_db_thread(resolve_route_sync, organization_id, model),
        ttl=settings.ROUTE_CACHE_SECONDS,
    )


def routed_model_names(organization_id: int) -> list[str]:
    return list(
        ModelRoute.objects.visible_to(organization_id)
        .filter(enabled=True)
        .values_list("public_name", flat=True)
        .distinct()
    )
