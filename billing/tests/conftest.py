"""Billing's test helpers: clean buffers, counters and caches; both buffer backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings

from billing import budgets, usage
from billing.selectors import budget_cache_forget, price_cache_forget

REDIS_SKIP = "REDIS_URL is not set: the Redis variant needs a real Redis (CI sets it)"


# The run's real Redis, whatever a test overrides in settings.
REAL_REDIS_URL = django_settings.REDIS_URL


def _clear_redis_keys() -> None:
    if not REAL_REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(REAL_REDIS_URL)
    try:
        keys = list(client.scan_iter(match="synthlang:billing:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _billing_isolation(settings):
    # Tests flush explicitly; a background thread would write outside the test's
    # transaction.
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    # The cast's passwords: a deliberately slow hash buys nothing in these tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    usage.memory_buffer.clear()
    budgets.budget_counters_forget()
    price_cache_forget()
    budget_cache_forget()
    _clear_redis_keys()
    yield
    usage.memory_buffer.clear()
    budgets.budget_counters_forget()
    price_cache_forget()
    budget_cache_forget()
    _clear_redis_keys()


@pytest.fixture(params=["memory", "redis"])
def backend(request, settings):
    """Run a test against the in-process buffer/counters and against Redis."""
    if request.param == "redis":
        if not REAL_REDIS_URL:
            pytest.skip(REDIS_SKIP)
        settings.CACHE_TYPE = "redis"
    else:
        settings.CACHE_TYPE = "memory"
    return request.param


def make_event(organization, user=None, api_key=None, **overrides) -> dict:
    event = {
        "request_id": f"req-{uuid.uuid4().hex}",
        "created_at": datetime.now(UTC).isoformat(),
        "organization_id": organization.pk,
        "user_id": user.pk if user else None,
        "api_key_id": api_key.pk if api_key else None,
        "endpoint": "chat.completions",
        "model": "gpt-4o",
        "upstream_model": "gpt-4o",
        "provider": "openai",
        "deployment": "openai/default",
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "cached_tokens": 0,
        "status_code": 200,
        "error_code": "",
        "stream": False,
        "client_disconnected": False,
        "cache": "miss",
        "cache_tier": "",
        "tokens_saved": 0,
        "compression_level": "",
        "latency_ms": 120.0,
        "upstream_ms": 110.0,
        "overhead_ms": 2.5,
    }
    event.update(overrides)
    return event
