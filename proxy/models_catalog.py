"""``GET /v1/models``: the routed models and the default provider's own list, filtered
by what the caller's key may use. Both lists are cached per process."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from accounts.selectors import Principal
from common.db import run_in_db_thread
from common.local_state import local_state_register
from common.ttlcache import TTLCache
from proxy import routing
from proxy.providers import provider_for
from proxy.providers.base import UpstreamError

logger = logging.getLogger(__name__)

# A catalog built while the default provider could not list its models is kept only this
# long: the next request after an upstream blip lists the upstream's models again.
INCOMPLETE_CATALOG_SECONDS = 15.0


@dataclass(frozen=True)
class _Catalog:
    models: list[dict]
    complete: bool  # the default provider's own list is in it


_catalog_cache: TTLCache[_Catalog] = TTLCache()


def catalog_cache_forget() -> None:
    _catalog_cache.clear()


local_state_register("models:catalog", catalog_cache_forget, redis_twin=False)


async def _default_provider_models(organization_id: int) -> list[dict] | None:
    """The default provider's models; None when it could not say."""
    plan = await run_in_db_thread(routing.default_plan, organization_id, settings.DEFAULT_MODEL)
    try:
        return await provider_for(plan.provider).list_models(plan.target())
    except UpstreamError as error:
        # The routed models are still worth listing when the upstream is unreachable.
        logger.warning("listing the default provider's models failed: %s", error.message)
        return None


def _catalog_ttl(catalog: _Catalog) -> float:
    if catalog.complete:
        return settings.MODELS_CACHE_SECONDS
    return min(settings.MODELS_CACHE_SECONDS, INCOMPLETE_CATALOG_SECONDS)


async def _catalog(organization_id: int) -> list[dict]:
    catalog = await _catalog_cache.get_or_load(
        organization_id, lambda: _load_catalog(organization_id), ttl=_catalog_ttl
    )
    return catalog.models


async def _load_catalog(organization_id: int) -> _Catalog:
    routed = await run_in_db_thread(routing.routed_model_names, organization_id)
    models = {
        name: {"id": name, "object": "model", "created": 0, "owned_by": "synthlang"}
        for name in routed
    }
    upstream = await _default_provider_models(organization_id)
    for model in upstream or []:
        model_id = model.get("id")
        if isinstance(model_id, str) and model_id not in models:
            models[model_id] = {
                "id": model_id,
                "object": "model",
                "created": int(model.get("created") or 0),
                "owned_by": str(model.get("owned_by") or "upstream"),
            }
    return _Catalog(
        models=sorted(models.values(), key=lambda item: item["id"]),
        complete=upstream is not None,
    )


async def models_for(principal: Principal) -> list[dict]:
    return [
        model
        for model in await _catalog(principal.organization_id)
        if principal.may_use_model(model["id"])
    ]
