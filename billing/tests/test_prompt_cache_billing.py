"""Provider prompt caching in billing: usage parsing, cost maths, savings, rollups, reports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from billing import reports, usage
from billing.models import DailyUsageRollup, UsageEvent
from billing.pricing import (
    Price,
    TokenCounts,
    cost_micros,
    estimate_cost_micros,
    prompt_cache_saved_micros,
    tokens_cost_micros,
    usage_tokens,
)
from billing.selectors import price_for
from billing.tests.conftest import make_event

# Anthropic's Claude Sonnet list price per Mtok: $3 in, $0.30 cache read, $3.75 5-minute
# cache write, $15 out. OpenAI's gpt-4o: $2.50 in, $1.25 cached, $10 out.
SONNET = Price(3_000_000, 15_000_000, 300_000, 3_750_000)
GPT_4O = Price(2_500_000, 10_000_000, 1_250_000)
TODAY = datetime.now(UTC).date()


# --- Reading an upstream's usage ----------------------------------------------------------


@pytest.mark.parametrize(
    ("usage_dict", "expected"),
    [
        ({"prompt_tokens": 12, "completion_tokens": 3}, TokenCounts(12, 3, 0, 0)),
        (
            {"prompt_tokens": 12.0, "prompt_tokens_details": {"cached_tokens": "4"}},
            TokenCounts(12, 0, 4, 0),
        ),
        # OpenAI's usage as the Anthropic provider passes it on: writes beside reads.
        (
            {
                "prompt_tokens": 3540,
                "completion_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 3000},
                "cache_read_input_tokens": 3000,
                "cache_creation_input_tokens": 500,
            },
            TokenCounts(3540, 50, 3000, 500),
        ),
        # Anthropic's own: input_tokens leaves the cached ones out.
        (
            {
                "input_tokens": 40,
                "cache_read_input_tokens": 3000,
                "cache_creation_input_tokens": 500,
                "output_tokens": 50,
            },
            TokenCounts(3540, 50, 3000, 500),
        ),
        # OpenAI's Responses API: input_tokens includes the cached ones.
        (
            {
                "input_tokens": 2000,
                "output_tokens": 9,
                "input_tokens_details": {"cached_tokens": 1536},
            },
            TokenCounts(2000, 9, 1536, 0),
        ),
        # More cached than prompt tokens cannot bill fewer than zero fresh tokens.
        (
            {
                "prompt_tokens": 100,
                "prompt_tokens_details": {"cached_tokens": 80},
                "cache_creation_input_tokens": 50,
            },
            TokenCounts(100, 0, 80, 20),
        ),
        # An upstream's nonsense counts as nothing rather than losing the whole event.
        ({"prompt_tokens": "many", "completion_tokens": -5}, TokenCounts()),
        ({"prompt_tokens": float("inf"), "prompt_tokens_details": [1]}, TokenCounts()),
        ({"prompt_tokens": True, "completion_tokens": None}, TokenCounts()),
        (None, TokenCounts()),
    ],
)
def test_usage_tokens_reads_every_dialect_into_non_negative_counts(usage_dict, expected):
    assert usage_tokens(usage_dict) == expected


# --- Cost maths, in integer micro-dollars --------------------------------------------------


def test_openai_cached_input_is_billed_at_the_cached_rate():
    # 976 fresh at $2.50 = 2440, 1024 cached at $1.25 = 1280, 100 out at $10 = 1000.
    tokens = usage_tokens(
        {
            "prompt_tokens": 2000,
            "completion_tokens": 100,
            "prompt_tokens_details": {"cached_tokens": 1024},
        }
    )
    assert tokens_cost_micros(price=GPT_4O, tokens=tokens) == 4720
    # Uncached the input was 5000; billed 3720: 1280 saved.
    assert prompt_cache_saved_micros(price=GPT_4O, tokens=tokens) == 1280


def test_anthropic_cache_reads_and_writes_are_billed_apart():
    tokens = TokenCounts(
        prompt_tokens=3540, completion_tokens=50, cache_read_tokens=3000, cache_write_tokens=500
    )
    # 40 fresh at $3 = 120, 3000 read at $0.30 = 900, 500 written at $3.75 = 1875,
    # 50 out at $15 = 750.
    assert tokens_cost_micros(price=SONNET, tokens=tokens) == 3645
    assert (
        cost_micros(
            price=SONNET,
            prompt_tokens=3540,
            completion_tokens=50,
            cached_tokens=3000,
            cache_write_tokens=500,
        )
        == 3645
    )
    # Uncached: 3540 at $3 = 10620; billed input 2895; saved 7725.
    assert prompt_cache_saved_micros(price=SONNET, tokens=tokens) == 7725


def test_a_request_that_only_writes_the_cache_saves_less_than_nothing():
    tokens = TokenCounts(
        prompt_tokens=3040, completion_tokens=0, cache_read_tokens=0, cache_write_tokens=3000
    )
    # 3000 written at $3.75 = 11250 and 40 fresh = 120, against 9120 uncached.
    assert tokens_cost_micros(price=SONNET, tokens=tokens) == 11370
    assert prompt_cache_saved_micros(price=SONNET, tokens=tokens) == -2250


def test_a_saving_is_rounded_down_and_a_loss_never_hidden():
    price = Price(1_000_001, 0, 100_000, 1_250_001)
    read = TokenCounts(prompt_tokens=3, cache_read_tokens=3)
    # Exactly 2.700003 micro-dollars saved: 2 claimed.
    assert prompt_cache_saved_micros(price=price, tokens=read) == 2
    written = TokenCounts(prompt_tokens=3, cache_write_tokens=3)
    # Exactly 0.75 lost: counted as 1.
    assert prompt_cache_saved_micros(price=price, tokens=written) == -1


def test_without_a_cache_write_price_writes_cost_the_input_price():
    tokens = TokenCounts(prompt_tokens=2000, cache_write_tokens=1500)
    assert tokens_cost_micros(price=GPT_4O, tokens=tokens) == 5000
    assert prompt_cache_saved_micros(price=GPT_4O, tokens=tokens) == 0


counts = st.integers(min_value=0, max_value=5_000_000)
rates = st.integers(min_value=0, max_value=100_000_000)


@st.composite
def cache_prices(draw):
    base = draw(rates)
    cached = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=base)))
    write = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=3 * base + 1)))
    return Price(base, draw(rates), cached, write)


@st.composite
def cache_usages(draw):
    prompt = draw(counts)
    read = draw(st.integers(min_value=0, max_value=prompt))
    write = draw(st.integers(min_value=0, max_value=prompt - read))
    return TokenCounts(prompt, draw(counts), read, write)


@given(cache_prices(), cache_usages())
def test_the_cost_is_the_exact_sum_of_the_four_rates_rounded_up_once(price, tokens):
    exact = (
        Decimal(tokens.fresh_prompt_tokens * price.input_per_mtok_micros)
        + tokens.cache_read_tokens * price.cached_rate
        + tokens.cache_write_tokens * price.cache_write_rate
        + tokens.completion_tokens * price.output_per_mtok_micros
    ) / 1_000_000
    cost = tokens_cost_micros(price=price, tokens=tokens)
    assert exact <= cost < exact + 1


@given(cache_prices(), cache_usages())
def test_the_saving_is_the_uncached_input_minus_the_billed_input_rounded_down(price, tokens):
    uncached = Decimal(tokens.prompt_tokens * price.input_per_mtok_micros)
    billed = (
        Decimal(tokens.fresh_prompt_tokens * price.input_per_mtok_micros)
        + tokens.cache_read_tokens * price.cached_rate
        + tokens.cache_write_tokens * price.cache_write_rate
    )
    exact = (uncached - billed) / 1_000_000
    saved = prompt_cache_saved_micros(price=price, tokens=tokens)
    assert exact - 1 < saved <= exact


@given(cache_prices(), cache_usages(), st.integers(min_value=0, max_value=100_000))
def test_a_budget_reservation_covers_any_split_of_reads_and_writes(price, tokens, max_tokens):
    estimate = estimate_cost_micros(
        price=price, prompt_tokens=tokens.prompt_tokens, max_tokens=max_tokens
    )
    actual = tokens_cost_micros(
        price=price,
        tokens=TokenCounts(
            tokens.prompt_tokens,
            min(tokens.completion_tokens, max_tokens),
            tokens.cache_read_tokens,
            tokens.cache_write_tokens,
        ),
    )
    assert actual <= estimate


# --- Prices in the database ----------------------------------------------------------------


@pytest.mark.django_db
def test_seeded_anthropic_prices_carry_the_cache_write_rate():
    now = datetime.now(UTC)
    sonnet = price_for("claude-sonnet-4-5-20250929", now)
    assert (sonnet.input_per_mtok_micros, sonnet.cached_rate, sonnet.cache_write_rate) == (
        3_000_000,
        300_000,
        3_750_000,
    )
    # Opus 4.5 costs a third of Opus 4: the more specific row wins over "claude-opus-4*".
    assert price_for("claude-opus-4-5-20251101", now).input_per_mtok_micros == 5_000_000
    assert price_for("claude-opus-4-1-20250805", now).cache_write_rate == 18_750_000
    assert not price_for("claude-haiku-4-5", now).unknown
    # OpenAI bills cache writes as ordinary input on these models.
    gpt = price_for("gpt-4o", now)
    assert gpt.cache_write_rate == gpt.input_per_mtok_micros == 2_500_000


# --- Usage events, rollups and reports -----------------------------------------------------


def _anthropic_event(org, user, **overrides):
    fields = {
        "model": "claude-sonnet-4-5",
        "upstream_model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "prompt_tokens": 3540,
        "completion_tokens": 50,
        "cached_tokens": 3000,
        "cache_write_tokens": 500,
    }
    return make_event(org, user, **{**fields, **overrides})


@pytest.mark.django_db
def test_the_flush_stores_reads_writes_cost_and_saving_and_rolls_them_up(org_a, alice):
    first = _anthropic_event(
        org_a, alice, cached_tokens=0, cache_write_tokens=3000, prompt_tokens=3040
    )
    second = _anthropic_event(org_a, alice)
    openai = make_event(org_a, alice, prompt_tokens=2000, completion_tokens=100, cached_tokens=1024)
    for event in (first, second, openai):
        usage.usage_record(event)
    usage.usage_flush_run()

    stored = UsageEvent.objects.get(request_id=second["request_id"])
    assert (stored.cached_tokens, stored.cache_write_tokens) == (3000, 500)
    assert stored.cost_micros == 3645
    assert stored.prompt_cache_saved_micros == 7725
    assert UsageEvent.objects.get(request_id=first["request_id"]).prompt_cache_saved_micros == (
        # 3000 written at $3.75 + 40 fresh + 50 out at $15, against 3040 at $3.
        9120 - (11250 + 120)
    )
    assert UsageEvent.objects.get(request_id=openai["request_id"]).cost_micros == 4720

    claude = DailyUsageRollup.objects.get(organization=org_a, model="claude-sonnet-4-5")
    assert (claude.cached_tokens, claude.cache_write_tokens) == (3000, 3500)
    assert claude.prompt_cache_saved_micros == 7725 - 2250
    totals = reports.usage_totals(organization_id=org_a.pk, start=TODAY, end=TODAY)
    assert totals["prompt_cache_saved_micros"] == 7725 - 2250 + 1280
    assert totals["savings_micros"] == (
        totals["avoided_cost_micros"]
        + totals["compression_saved_micros"]
        + totals["prompt_cache_saved_micros"]
    )
    assert totals["prompt_cache_read_rate"] == round((3000 + 1024) / (3040 + 3540 + 2000), 4)


@pytest.mark.django_db
def test_a_response_cache_hit_claims_no_prompt_cache_saving(org_a, alice):
    hit = _anthropic_event(org_a, alice, cache="hit", tokens_saved=100)
    usage.usage_record(hit)
    usage.usage_flush_run()
    stored = UsageEvent.objects.get(request_id=hit["request_id"])
    assert stored.cost_micros == 0
    assert stored.avoided_cost_micros == 3645
    assert (stored.compression_saved_micros, stored.prompt_cache_saved_micros) == (0, 0)


@pytest.mark.django_db
def test_reports_and_csv_show_the_prompt_cache_beside_the_other_savings(org_a, alice):
    usage.usage_record(_anthropic_event(org_a, alice, tokens_saved=1000))
    usage.usage_flush_run()
    rows = reports.usage_grouped(organization_id=org_a.pk, start=TODAY, end=TODAY, group_by="model")
    table = list(csv.DictReader(io.StringIO(reports.rows_csv(rows, group_by="model"))))
    assert table[0]["model"] == "claude-sonnet-4-5"
    assert table[0]["cache_write_tokens"] == "500"
    assert table[0]["prompt_cache_saved_usd"] == "0.007725"
    assert table[0]["compression_saved_usd"] == "0.003000"  # 1000 tokens at $3/Mtok
    assert table[0]["savings_usd"] == "0.010725"

    report = reports.month_report(organization_id=org_a.pk, month=TODAY)
    month_csv = list(csv.DictReader(io.StringIO(reports.month_report_csv(report))))
    assert month_csv[-1]["day"] == "TOTAL"
    assert month_csv[-1]["prompt_cache_saved_usd"] == "0.007725"


@pytest.mark.django_db
@pytest.mark.urls("billing.tests.urls")
def test_the_admin_dashboards_show_the_prompt_cache_saving(org_a, alice, alice_client):
    usage.usage_record(_anthropic_event(org_a, alice))
    usage.usage_flush_run()
    alice.is_staff = True
    alice.save()
    client = Client()
    client.force_login(alice)
    page = client.get("/admin/billing/dailyusagerollup/dashboard/", {"days": 7}).content.decode()
    assert "provider prompt cache $0.007725" in page
    assert "3000 read, 500 written" in page
    landing = client.get("/admin/").content.decode()
    assert "provider prompt cache $0.007725" in landing
    api = alice_client.get("/api/usage", {"group_by": "model"}).json()
    assert api["totals"]["prompt_cache_saved_micros"] == 7725
    assert api["totals"]["cache_write_tokens"] == 500
