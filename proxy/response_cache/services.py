"""Cache operations beyond the request path: stats, clearing, warming.

Keyword-only; the blocking ones run on a pool thread (the admin calls them directly).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max

from accounts.models import ApiKey
from accounts.selectors import aprincipal_for_organization
from common.db import run_in_db_thread
from common.errors import DomainError
from common.outages import is_outage_error
from proxy import accounting, gateway
from proxy.beat import CACHE_REFRESH_EVERY_SECONDS
from proxy.models import CacheEntry
from proxy.response_cache import store, store_entry, tier
from proxy.response_cache.backends import cache_tiers
from proxy.semantic_cache.embedding import english_lexicon
from proxy.semantic_cache.normalize import fingerprint

logger = logging.getLogger(__name__)


async def cache_stats(*, scope: str) -> dict:
    """The scope's counters across processes (Redis) or this process's (memory)."""
    state = await store.ensure_scope(scope)
    entries, hits, misses, evictions = await cache_tiers().counters(state, scope)
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
    # Shared scopes belong to no organization: one organization cannot clear them.
    return sorted(scope for scope in scopes if not scope.startswith("platform"))


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
        english_lexicon()
        tier.semantic_succeeded()
    except Exception as error:
        # Reported once, as the semantic tier's state; the exact tier does not need it.
        tier.semantic_failed(error)
    try:
        recent = (
            CacheEntry.objects.filter(expires_at__gt=datetime.now(tz=UTC))
            .values("scope")
            .annotate(latest=Max("created_at"))
            .order_by("-latest")[: store.WARM_SCOPES]
        )
        for row in recent:
            store.load_scope_blocking(row["scope"])
    except Exception as error:
        if not is_outage_error(error):
            logger.exception("cache warm-up: loading the scopes failed")
            return
        # Redis or the database is away: the outage's own report says so; scopes load on
        # first use once it is back.
        logger.warning("cache warm-up skipped: %s", type(error).__name__)
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


def cache_refresh_horizon_seconds() -> float:
    """How close to expiry an entry must be for a refresh to re-ask for it.

    The last tenth of its life, but never less than the time between two beat runs: an entry
    that one run leaves alone is still alive at the next, so no popular entry expires
    between runs unrefreshed.
    """
    return max(settings.CACHE_TTL_SECONDS / 10, CACHE_REFRESH_EVERY_SECONDS)


def _warm_cap_micros() -> int:
    if not settings.ENABLE_CACHE:
        return 0
    return int(settings.CACHE_WARM_MAX_USD_PER_DAY * 1_000_000)


def _refreshable_entries():
    """Entries worth re-asking now: hit at least once, alive but expiring within the horizon,
    of an organization that caches, and asked as a bare question.

    Entries do not keep the whole request (system prompt, history, parameters), so only a
    bare question can be re-asked as it was asked; the others just expire.
    """
    now = datetime.now(tz=UTC)
    due = CacheEntry.objects.filter(
        organization__cache_enabled=True,
        hits__gt=0,
        expires_at__gt=now,
        expires_at__lte=now + timedelta(seconds=cache_refresh_horizon_seconds()),
    )
    # order_by(): the model's default ordering would otherwise join the DISTINCT.
    models = due.order_by().values_list("model", flat=True).distinct()
    return due.filter(context_fingerprint__in=[_bare_fingerprint(model) for model in models])


def cache_refresh_due_organization_ids() -> list[int]:
    """The organizations a refresh would re-ask something for; none while warming is off."""
    if _warm_cap_micros() <= 0:
        return []
    return sorted(
        _refreshable_entries().order_by().values_list("organization_id", flat=True).distinct()
    )


def _spend_key(organization_id: int) -> str:
    return f"cache-warm-spend:{organization_id}:{datetime.now(tz=UTC).date().isoformat()}"


async def _spend_add(organization_id: int, cost_micros: int) -> None:
    key = _spend_key(organization_id)
    # add then incr: two workers refreshing one organization both count (a get and a set
    # would let one overwrite the other). The key outlives its day, then goes.
    await cache.aadd(key, 0, timeout=2 * 86_400)
    await cache.aincr(key, cost_micros)


async def _background_writes_finish() -> None:
    # store_entry writes the database copy in the background; a Celery task's event loop
    # ends with this coroutine and would cancel that write before it ran.
    # The same for the calls' accounting (proxy.gateway's background tasks).
    loop = asyncio.get_running_loop()
    while pending := [
        task for task in (*store._background, *gateway._background) if task.get_loop() is loop
    ]:
        await asyncio.gather(*pending, return_exceptions=True)


async def cache_refresh_popular(*, organization_id: int, limit: int = 20) -> dict:
    """Re-ask upstream for the organization's most hit entries that expire soon.

    Opt-in (``CACHE_WARM_MAX_USD_PER_DAY`` > 0) and stopped by that cap per UTC day. Each
    call goes through the request pipeline as the organization's own call (its model
    rules, rate limit and budget; retries and fallback; one usage event with no member),
    with the cache lookup and compression off: the entry is replaced as it was asked.
    """
    cap_micros = _warm_cap_micros()
    result = {"refreshed": 0, "spent_micros": 0, "stopped_by_cap": False}
    if cap_micros <= 0:
        return result

    def candidates():
        mine = _refreshable_entries().filter(organization_id=organization_id)
        return list(mine.order_by("-hits")[:limit])

    try:
        principal = await aprincipal_for_organization(
            organization_id=organization_id, username="cache-warmer"
        )
        for row in await run_in_db_thread(candidates):
            if await cache.aget(_spend_key(organization_id), 0) >= cap_micros:
                result["stopped_by_cap"] = True
                break
            body = {"model": row.model, "messages": [{"role": "user", "content": row.question}]}
            call = gateway.ProxyCall(
                principal=principal,
                request_id=f"req_cache_warm_{uuid.uuid4().hex}",
                endpoint="chat.completions",
                model=row.model,
                body=body,
                compression_header="off",
                cache_header="off",
            )
            try:
                plan = await gateway.admit(call)
                answer = await gateway.run_json(
                    call, plan, lambda provider, target, call=call: provider.chat(target, call.body)
                )
            except DomainError as error:
                # Refused (budget, limits, model rules) or failed upstream: accounted like
                # any call, and the entry simply expires.
                await accounting.fail(call, error)
                logger.warning("cache warming: entry %s not refreshed (%s)", row.pk, error.code)
                continue
            await gateway.call_settled(call)
            cost = call.cost_micros or 0
            await _spend_add(organization_id, cost)
            result["spent_micros"] += cost
            if not answer.body.get("choices"):
                continue  # paid for, but nothing to serve (cache_store keeps no such answer)
            entry = store.Entry.from_row(row)
            entry.response = answer.body
            entry.expires_at = time.time() + settings.CACHE_TTL_SECONDS
            # Stored like a new answer, so its hits count from zero: an entry nobody asks for
            # during its new life is not paid for again.
            await store_entry(entry)
            result["refreshed"] += 1
    finally:
        await _background_writes_finish()
    return result
