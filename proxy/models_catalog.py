"""``GET /v1/models``: the routed models and the default provider's own list, filtered
by what the caller's key may use. Both lists are cached per process."""

from __future__ import annotations

import logging

from django.conf import settings

from accounts.selectors import Principal
from common.db import run_in_db_thread
from common.ttlcache import TTLCache
from proxy import routing
from proxy.providers import provider_for
from proxy.providers.base import UpstreamError

logger = logging.getLogger(__name__)

_catalog_cache: TTLCache[list[dict]] = TTLCache()


def catalog_cache_forget() -> None:
    _catalog_cache.clear()


async def _default_provider_models(organization_id: int) -> list[dict]:
    plan = await run_in_db_thread(routing.default_plan, organization_id, settings.DEFAULT_MODEL)
    try:
        return await provider_for(plan.provider).list_models(plan.target())
    except UpstreamError as error:
        # The routed models are still worth listing when the upstream is unreachable.
        logger.warning("listing the default provider's models failed: %s", error.message)
        return []


async def _catalog(organization_id: int) -> list[dict]:
    return await _catalog_cache.get_or_load(
        organization_id,
        lambda: _load_catalog(organization_id),
        ttl=settings.MODELS_CACHE_SECONDS,
    )


async def _load_catalog(organization_id: int) -> list[dict]:
    routed = await run_in_db_thread(routing.routed_model_names, organization_id)
    models = {
        name: {"id": name, "object": "model", "created": 0, "owned_by": "synthlang"}
        for name in routed
    }
    for model in await _default_provider_models(organization_id):
        model_id = model.get("id")
        if isinstance(model_id, str) and model_id not in models:
            models[model_id] = {
                "id": model_id,
                "object": "model",
                "created": int(model.get("created") or 0),
                "owned_by": str(model.get("owned_by") or "upstream"),
            }
    return sorted(models.values(), key=lambda item: item["id"])


async def models_for(principal: Principal) -> list[dict]:
    return [
        model
        for model in await _catalog(principal.organization_id)
        if principal.may_use_model(model["id"])
    ]
