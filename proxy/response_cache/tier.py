"""The semantic tier's health: is the embedder usable, and since when is it not?

The exact tier never needs the embedder. When the model is missing, fails its hash check or
the upstream embeddings API fails, only the semantic tier stops: the failure is logged once
(and again only when it changes or recovers), counted in a metric, and shown by
``semantic_tier_state()``, which ``/health`` and any readiness probe can call. A request never
logs it.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from proxy import metrics

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_failure: str | None = None
_failed_at: float | None = None
_last_success_at: float | None = None


def semantic_failed(error: BaseException) -> None:
    """Record that the semantic tier could not embed; logs only a new kind of failure."""
    global _failure, _failed_at
    message = f"{type(error).__name__}: {error}"[:500]
    with _lock:
        changed = message != _failure
        _failure = message
        _failed_at = _failed_at if not changed and _failed_at else time.time()
    metrics.CACHE_SEMANTIC_UP.set(0)
    metrics.CACHE_SEMANTIC_FAILURES.inc()
    if changed:
        logger.warning(
            "cache: the semantic tier is unavailable (%s); exact repeats are still served "
            "and stored. Reported once; see /health.",
            message,
        )


def semantic_succeeded() -> None:
    global _failure, _failed_at, _last_success_at
    with _lock:
        recovered = _failure is not None
        _failure = None
        _failed_at = None
        _last_success_at = time.time()
    metrics.CACHE_SEMANTIC_UP.set(1)
    if recovered:
        logger.warning("cache: the semantic tier is available again")


def semantic_tier_state() -> dict:
    """The semantic tier's state for health and readiness checks (never raises).

    ``ok``: the embedder works; ``degraded``: it failed (``error`` says how) and only exact
    repeats are served; ``disabled``: the cache is off. With the local model, a state that is
    not known yet is found out by loading it (once per process; the load is remembered).
    """
    from proxy.response_cache import store

    embedder = store.embedder()
    base = {"embedder": getattr(embedder, "model_id", type(embedder).__name__)}
    if not settings.ENABLE_CACHE:
        return {"status": "disabled", **base}
    if store.embeds_locally() and _failure is None and _last_success_at is None:
        try:
            embedder.warm_up()
            semantic_succeeded()
        except Exception as error:  # reported as the tier's state, whatever it is
            semantic_failed(error)
    with _lock:
        failure, failed_at = _failure, _failed_at
    if failure is not None:
        return {"status": "degraded", **base, "error": failure, "since": failed_at}
    if _last_success_at is None:
        # The upstream embedder is not called for a health check: it costs money.
        return {"status": "ok", **base, "detail": "not used yet"}
    return {"status": "ok", **base}


def reset_for_tests() -> None:
    global _failure, _failed_at, _last_success_at
    with _lock:
        _failure = _failed_at = _last_success_at = None
