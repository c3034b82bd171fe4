"""Built-in tool calls (web search, file search...) priced per call beside the tokens, by
price rows named ``tool:<tool>``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing import pricing, usage
from billing.models import Price, UsageEvent
from billing.selectors import price_cache_forget, tool_fees_micros
from billing.tests.conftest import make_event

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _price(pattern: str, *, per_unit: int | None, since=datetime(2026, 1, 1, tzinfo=UTC)):
    Price.objects.create(
        model_pattern=pattern,
        effective_from=since,
        input_per_mtok_micros=1_000_000,
        output_per_mtok_micros=1_000_000,
        per_unit_micros=per_unit,
    )
    price_cache_forget()


def test_the_counts_keep_tool_names_and_positive_integer_counts_only():
    assert pricing.tool_call_counts(
        {"web_search": 2, "File_Search": 1, "bad name": 1, "x": True, "y": -1, "z": 1.5}
    ) == {"web_search": 2, "file_search": 1}
    assert pricing.tool_call_counts(["web_search"]) == {}
    assert pricing.tool_call_counts({"a" * 41: 1}) == {}


def test_a_usage_dict_reports_the_proxys_counts_and_anthropics_server_tool_use():
    assert pricing.tool_calls_in_usage({"prompt_tokens": 3, "tool_calls": {"web_search": 2}}) == {
        "web_search": 2
    }
    anthropic = {
        "input_tokens": 10,
        "output_tokens": 5,
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 0},
    }
    assert pricing.tool_calls_in_usage(anthropic) == {"web_search": 3}
    assert pricing.tool_calls_in_usage({"prompt_tokens": 3}) == {}
    assert pricing.tool_calls_in_usage(None) == {}


@pytest.mark.django_db
def test_a_tool_row_prices_its_calls_and_a_catch_all_model_row_does_not():
    _price("*", per_unit=999_999)  # a catch-all model price: never a tool's fee
    _price("tool:web_search", per_unit=10_000)  # $10 per 1000 calls
    _price("tool:file_*", per_unit=2_500)

    assert tool_fees_micros({"web_search": 3}, NOW) == 30_000
    assert tool_fees_micros({"file_search": 2, "web_search": 1}, NOW) == 15_000
    assert tool_fees_micros({"code_interpreter": 4}, NOW) == 0  # no row: no fee
    assert tool_fees_micros({}, NOW) == 0


@pytest.mark.django_db
def test_the_fee_in_force_at_the_call_applies():
    _price("tool:web_search", per_unit=25_000, since=datetime(2026, 1, 1, tzinfo=UTC))
    _price("tool:web_search", per_unit=10_000, since=datetime(2026, 5, 1, tzinfo=UTC))

    assert tool_fees_micros({"web_search": 1}, datetime(2026, 3, 1, tzinfo=UTC)) == 25_000
    assert tool_fees_micros({"web_search": 1}, NOW) == 10_000
    assert tool_fees_micros({"web_search": 1}, datetime(2025, 1, 1, tzinfo=UTC)) == 0


@pytest.mark.django_db
def test_a_flushed_event_stores_its_tool_calls_and_adds_their_fees_to_its_cost(
    backend, org_a, alice
):
    _price("tool:web_search", per_unit=10_000)
    plain = make_event(org_a, alice)
    searched = make_event(org_a, alice, tool_calls={"web_search": 2, "unknown": 1})
    hit = make_event(org_a, alice, cache="hit", tool_calls={"web_search": 2})
    for event in (plain, searched, hit):
        usage.usage_record(event)
    usage.usage_flush_run()

    base = UsageEvent.objects.get(request_id=plain["request_id"])
    stored = UsageEvent.objects.get(request_id=searched["request_id"])
    assert stored.tool_calls == {"web_search": 2, "unknown": 1}
    assert stored.cost_micros == base.cost_micros + 20_000
    assert base.tool_calls == {}
    cached = UsageEvent.objects.get(request_id=hit["request_id"])
    assert cached.cost_micros == 0 and cached.avoided_cost_micros == base.cost_micros + 20_000
