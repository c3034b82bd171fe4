"""Fixtures of the surface endpoints' end-to-end tests: a proxy that reads prices afresh,
and the per-unit prices the tests check costs against."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.models import Price
from billing.selectors import price_cache_forget
from common.testing import live_server

# (pattern, input, output per Mtok, per unit), in micro-dollars: OpenAI's list prices.
TEST_PRICES = (
    ("dall-e-3", 0, 0, 40_000),
    ("dall-e-2", 0, 0, 20_000),
    ("tts-1", 0, 0, 15),
    ("whisper-1", 0, 0, 100),
    ("omni-moderation-*", 0, 0, None),
    ("gpt-4o-mini", 150_000, 600_000, None),
)


@pytest.fixture(scope="module")
def proxy_url(django_db_setup, tmp_path_factory):
    """This module's proxy: the session's settings, and prices read on every request (a
    transactional test's flush removes the seeded prices; each test writes its own)."""
    env = {
        "UPSTREAM_MAX_RETRIES": "2",
        "UPSTREAM_BACKOFF_BASE": "0.01",
        "UPSTREAM_BACKOFF_MAX": "0.5",
        "ROUTE_CACHE_SECONDS": "0",
        "MODELS_CACHE_SECONDS": "0",
        "DEPLOYMENT_COOLDOWN_SECONDS": "0",
        "PRICE_CACHE_SECONDS": "0",
    }
    log = tmp_path_factory.mktemp("surface-proxy") / "proxy.log"
    with live_server(env=env, log_path=log) as base_url:
        yield base_url


@pytest.fixture(autouse=True)
def unit_prices(live_db):
    since = datetime(2020, 1, 1, tzinfo=UTC)
    for pattern, input_micros, output_micros, per_unit in TEST_PRICES:
        Price.objects.create(
            model_pattern=pattern,
            effective_from=since,
            input_per_mtok_micros=input_micros,
            output_per_mtok_micros=output_micros,
            per_unit_micros=per_unit,
        )
    price_cache_forget()
