"""Cache operations beyond the request path: stats, clearing, warming.

Keyword-only; the blocking ones run on a pool thread (the admin calls them directly).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max

from common import redis as shared_redis
from common.db import run_in_db_thread
from proxy.models import CacheEntry
from proxy.response_cache import store
from proxy.semantic_cache.normalize import fingerprint

logger = logging.getLogger(__name__)


async def cache_stats(*, scope: str) -> dict:
    """The scope's counters across processes (Redis) or this process's (memory)."""
    state = await store.ensure_scope(scope)
    if shared_redis.redis_enabled():
        keys = store._keys(scope)
        pipe = shared_redis.async_redis().pipeline(transaction=False)
        pipe.zcount(keys["exp"], time.time(), "+inf")
        pipe.hgetall(keys["stats"])
        entries, counters = await pipe.execute()
        counters = {name.decode(): int(value) for name, value in counters.items()}
        hits, misses = counters.get("hits", 0), counters.get("misses", 0)
        evictions = counters.get("evictions", 0)
    else:
        now = time.time()
        entries = sum(1 for entry in state.entries.values() if entry.live(now))
        hits, misses, evictions = state.hits, state.misses, state.evictions
    lookups = hits + misses
    return {
        "object": "cache.stats",
        "scope": scope,
        "entries": int(entries),
        "hits": hits,
        "misses": misses,
        "hit_rate": round(hits / lookups, 4) if lookups else 0.0,
        "evictions": evictions,
        "memory_bytes": state.memory_bytes(),
        "max_items": settings.CACHE_MAX_ITEMS,
        "ttl_seconds": settings.CACHE_TTL_SECONDS,
    }


def _organization_scopes(organization_id: int) -> list[str]:
    from accounts.models import ApiKey

    scopes = {f"org:{organization_id}"}
    scopes.update(
        f"key:{key_id}"
        for key_id in ApiKey.objects.filter(organization_id=organization_id).values_list(
            "id", flat=True
        )
    )
    scopes.update(
        CacheEntry.objects.filter(organization_id=organization_id)
        .values_list("scope", flat=True)
        .distinct()
    )
    scopes.discard("platform")  # shared by every tenant: one organization cannot clear it
    return sorted(scopes)


def cache_clear_organization_blocking(*, organization_id: int) -> int:
    """Forget every entry of the organization in every tier; returns the rows deleted."""
    store.clear_scopes_blocking(scopes=_organization_scopes(organization_id))
    deleted, _ = CacheEntry.objects.filter(organization_id=organization_id).delete()
    return deleted


async def cache_clear_organization(*, organization_id: int) -> int:
    return await run_in_db_thread(
        cache_clear_organization_blocking, organization_id=organization_id
    )


def cache_remove_entries(*, entries) -> int:
    """Remove the given `CacheEntry` rows from every tier (the admin's action)."""
    return store.remove_entries_blocking(
        pairs=[(entry.scope, entry.exact_key) for entry in entries]
    )


# --- Warming ------------------------------------------------------------------------------


def _warm_blocking() -> None:
    try:
        store.embedder().warm_up()
        store.embedder().lexicon()
    except Exception:
        logger.exception("cache warm-up: the embedding model did not load")
    try:
        recent = (
            CacheEntry.objects.filter(expires_at__gt=datetime.now(tz=UTC))
            .values("scope")
            .annotate(latest=Max("created_at"))
            .order_by("-latest")[: store.WARM_SCOPES]
        )
        for row in recent:
            store.load_scope_blocking(row["scope"])
    except Exception:
        logger.exception("cache warm-up: loading the scopes failed")
    finally:
        from django.db import connection

        connection.close()


def cache_warm_start() -> threading.Thread | None:
    """Load the embedder and the recent scopes' indexes in a background thread, at start."""
    if not settings.ENABLE_CACHE:
        return None
    thread = threading.Thread(target=_warm_blocking, name="cache-warm-up", daemon=True)
    thread.start()
    return thread


def _bare_fingerprint(model: str) -> str:
    return fingerprint(parts={"history": [], "shaping": {"model": model}})


def _spend_key(organization_id: int) -> str:
    return f"cache-warm-spend:{organization_id}:{date.today().isoformat()}"  # noqa: DTZ011


async def cache_refresh_popular(*, organization_id: int, limit: int = 20) -> dict:
    """Re-ask upstream for the organization's most hit entries that expire soon.

    Opt-in (``CACHE_WARM_MAX_USD_PER_DAY`` > 0) and stopped by that cap per day.
    """
    from accounts.selectors import Principal
    from billing import pricing
    from billing.selectors import aprice_for
    from proxy import gateway, routing
    from proxy.providers.base import UpstreamError

    cap_micros = int(getattr(settings, "CACHE_WARM_MAX_USD_PER_DAY", 0) * 1_000_000)
    result = {"refreshed": 0, "spent_micros": 0, "stopped_by_cap": False}
    if cap_micros <= 0:
        return result
    horizon = datetime.now(tz=UTC) + timedelta(seconds=settings.CACHE_TTL_SECONDS / 10)

    def candidates():
        return list(
            CacheEntry.objects.filter(
                organization_id=organization_id,
                hits__gt=0,
                expires_at__gt=datetime.now(tz=UTC),
                expires_at__lte=horizon,
            ).order_by("-hits")[:limit]
        )

    for row in await run_in_db_thread(candidates):
        spent = cache.get(_spend_key(organization_id), 0)
        if spent >= cap_micros:
            result["stopped_by_cap"] = True
            break
        body = {"model": row.model, "messages": [{"role": "user", "content": row.question}]}
        if row.context_fingerprint != _bare_fingerprint(row.model):
            # Entries do not keep the whole request (system prompt, history, parameters), so
            # only a bare question can be re-asked as it was; the others just expire.
            continue
        principal = Principal(
            key_id=0,
            key_prefix="",
            organization_id=organization_id,
            organization_slug="",
            user_id=0,
            username="cache-warmer",
            role="admin",
            expires_at=None,
        )
        call = gateway.ProxyCall(
            principal=principal,
            request_id=f"cache-warm-{row.pk}",
            endpoint="chat.completions",
            model=row.model,
            body=body,
        )
        try:
            plan = await routing.resolve_route(organization_id, row.model)
            answer = await gateway.call_upstream(
                call, plan, lambda provider, target, body=body: provider.chat(target, body)
            )
        except UpstreamError:
            logger.warning("cache warming: upstream refused entry %s", row.pk)
            continue
        usage = answer.body.get("usage") or {}
        price = await aprice_for(row.model, datetime.now(tz=UTC))
        cost = pricing.cost_micros(
            price=price,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
        cache.set(_spend_key(organization_id), spent + cost, timeout=2 * 86_400)
        result["spent_micros"] += cost
        entry = store.Entry.from_row(row)
        entry.response = answer.body
        entry.expires_at = time.time() + settings.CACHE_TTL_SECONDS
        from proxy.response_cache import store_entry

        await store_entry(entry)
        result["refreshed"] += 1
    return result
