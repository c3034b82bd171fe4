"""Effective-dated prices: lookup rules, the unknown-model rule, and the per-process cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing import usage
from billing.models import Price, UsageEvent
from billing.selectors import price_cache_forget, price_for
from billing.tests.conftest import make_event

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 9, 1, tzinfo=UTC)


def _price(pattern, effective_from, input_micros, output_micros, cached=None):
    row = Price.objects.create(
        model_pattern=pattern,
        effective_from=effective_from,
        input_per_mtok_micros=input_micros,
        output_per_mtok_micros=output_micros,
        cached_input_per_mtok_micros=cached,
    )
    price_cache_forget()
    return row


def test_seeded_list_prices_are_found():
    assert price_for("gpt-4o", NOW).input_per_mtok_micros == 2_500_000
    assert price_for("gpt-4o-mini-2024-07-18", NOW).output_per_mtok_micros == 600_000
    assert price_for("claude-sonnet-4-20250514", NOW).cached_input_per_mtok_micros == 300_000
    assert price_for("text-embedding-3-small", NOW).output_per_mtok_micros == 0
    assert not price_for("gpt-4.1-nano", NOW).unknown


def test_o3_price_cut_applies_only_from_its_date():
    before = price_for("o3", datetime(2025, 5, 1, tzinfo=UTC))
    after = price_for("o3", datetime(2025, 7, 1, tzinfo=UTC))
    assert (before.input_per_mtok_micros, after.input_per_mtok_micros) == (10_000_000, 2_000_000)


def test_an_exact_name_beats_a_glob_and_a_longer_glob_beats_a_shorter_one():
    _price("acme-*", NOW - timedelta(days=9), 1, 1)
    _price("acme-large-*", NOW - timedelta(days=9), 2, 2)
    _price("acme-large-v2", NOW - timedelta(days=9), 3, 3)
    assert price_for("acme-small", NOW).input_per_mtok_micros == 1
    assert price_for("acme-large-v1", NOW).input_per_mtok_micros == 2
    assert price_for("acme-large-v2", NOW).input_per_mtok_micros == 3
    assert price_for("ACME-Large-V2", NOW).input_per_mtok_micros == 3
    assert price_for("openrouter/acme-large-v2", NOW).input_per_mtok_micros == 3


def test_a_model_priced_only_in_the_future_is_unknown_today():
    _price("tomorrow-model", NOW + timedelta(days=1), 5, 5)
    assert price_for("tomorrow-model", NOW).unknown


def test_unknown_models_use_the_configured_rule_and_are_flagged(settings):
    settings.UNKNOWN_MODEL_PRICE_PER_MTOK_USD = "0"
    assert price_for("no-such-model", NOW) == price_for("other-unknown", NOW)
    assert price_for("no-such-model", NOW).unknown
    assert price_for("no-such-model", NOW).input_per_mtok_micros == 0
    settings.UNKNOWN_MODEL_PRICE_PER_MTOK_USD = "2.5,10"
    price = price_for("no-such-model", NOW)
    assert (price.input_per_mtok_micros, price.output_per_mtok_micros) == (2_500_000, 10_000_000)


def test_lookups_are_served_from_memory_within_the_ttl(django_assert_num_queries):
    price_for("gpt-4o", NOW)
    with django_assert_num_queries(0):
        for _ in range(100):
            price_for("gpt-4o", NOW)
            price_for("claude-3-5-haiku-latest", NOW)


def test_a_new_price_does_not_rewrite_the_cost_of_past_events(org_a, alice):
    old_day = datetime.now(UTC) - timedelta(days=3)
    _price("repriced-model", old_day - timedelta(days=30), 1_000_000, 2_000_000)
    early = make_event(
        org_a,
        alice,
        model="repriced-model",
        upstream_model="repriced-model",
        created_at=(old_day).isoformat(),
    )
    usage.usage_record(early)
    usage.usage_flush_run()
    # The price doubles from yesterday on; an event from before it is flushed later.
    _price("repriced-model", datetime.now(UTC) - timedelta(days=1), 2_000_000, 4_000_000)
    late_old = make_event(
        org_a,
        alice,
        model="repriced-model",
        upstream_model="repriced-model",
        created_at=(old_day + timedelta(hours=1)).isoformat(),
    )
    new = make_event(org_a, alice, model="repriced-model", upstream_model="repriced-model")
    usage.usage_record(late_old)
    usage.usage_record(new)
    usage.usage_flush_run()
    costs = dict(UsageEvent.objects.values_list("request_id", "cost_micros"))
    # 1000 in and 500 out: $1/$2 per M -> 2000 micros; doubled -> 4000 micros.
    assert costs[early["request_id"]] == 2000
    assert costs[late_old["request_id"]] == 2000
    assert costs[new["request_id"]] == 4000
