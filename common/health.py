"""The state of each component the proxy depends on, for ``/readyz`` and ``/health``.

Each check returns the component's state; which failures make the instance not ready is
decided in common/probes.py. Apps add their own components (``component_register``): the
semantic cache tier, whose embedder failing leaves exact repeats working.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connections


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check() or {}
        state = {"status": "ok", **detail}
    except Exception as exc:  # a health check reports every failure, whatever its kind
        # The class only: a driver's message names the host, port, user or database.
        state = {"status": "error", "error": type(exc).__name__}
    state["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return state


def check_database() -> dict:
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def check_cache() -> dict:
    probe_key = f"health:{uuid.uuid4().hex}"
    cache.set(probe_key, "1", timeout=5)
    if cache.get(probe_key) != "1":
        raise RuntimeError("the cache did not return the value just written")
    cache.delete(probe_key)
    return {"backend": settings.CACHE_TYPE}


def check_broker() -> dict:
    from synthlang_site.celery import app

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
    return {"transport": app.conf.broker_url.split("://", 1)[0]}


# name -> a function returning that component's state: {"status": "ok"|"degraded"|..., ...}.
# Apps register theirs in AppConfig.ready(), so this module imports none of them.
_registered: dict[str, Callable[[], dict]] = {}


def component_register(name: str, state: Callable[[], dict]) -> None:
    _registered[name] = state


def _registered_state(state: Callable[[], dict]) -> dict:
    started = time.perf_counter()
    try:
        result = dict(state())
    except Exception as exc:  # a broken probe is reported, never raised
        result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def _probe_redis() -> None:
    """During an outage, the probe requests would make (one per ``REDIS_RETRY_SECONDS``):
    without it a process with no traffic would report Redis down long after it is back."""
    from common.outages import REDIS_ERRORS, redis_outage
    from common.redis import sync_redis

    if not redis_outage.usable():  # another caller probed within the interval
        return
    started_at = time.monotonic()
    try:
        sync_redis().ping()
    except REDIS_ERRORS as error:
        redis_outage.failed(error)
    else:
        redis_outage.succeeded(started_at)


def component_states() -> dict[str, dict]:
    from common.outages import redis_configured, redis_outage

    states = {"database": _timed(check_database), "cache": _timed(check_cache)}
    if redis_configured():
        if redis_outage.down:
            _probe_redis()
        # Limits, budgets and the usage buffer as requests see them (common/outages.py).
        states["shared_state"] = redis_outage.state()
    if settings.CELERY_BROKER_URL:
        states["broker"] = _timed(check_broker)
    else:
        states["broker"] = {"status": "disabled", "detail": "tasks run eagerly in-process"}
    for name, state in _registered.items():
        states[name] = _registered_state(state)
    return states
