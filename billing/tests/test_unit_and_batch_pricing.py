"""Per-unit prices (images, audio seconds, characters) and batch rates: pure maths."""

from billing import pricing
from billing.pricing import Price, TokenCounts


def test_batch_rates_are_half_the_list_rates_unless_a_batch_price_is_set():
    price = Price(2_500_000, 10_000_000, 1_250_000)
    halved = pricing.batch_rates(price)
    assert (halved.input_per_mtok_micros, halved.output_per_mtok_micros) == (1_250_000, 5_000_000)
    assert halved.cached_rate == 625_000
    explicit = pricing.batch_rates(
        Price(
            2_500_000,
            10_000_000,
            batch_input_per_mtok_micros=1_000_000,
            batch_output_per_mtok_micros=4_000_000,
        )
    )
    assert (explicit.input_per_mtok_micros, explicit.output_per_mtok_micros) == (
        1_000_000,
        4_000_000,
    )


def test_an_odd_rate_halves_upwards_so_a_batch_is_never_billed_below_half():
    assert pricing.batch_rates(Price(3, 5)).input_per_mtok_micros == 2


def test_a_batch_costs_half_of_the_same_tokens_outside_a_batch():
    price = Price(2_500_000, 10_000_000)
    tokens = TokenCounts(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    full = pricing.request_cost_micros(price=price, tokens=tokens)
    batch = pricing.request_cost_micros(price=price, tokens=tokens, batch=True)
    assert full == 12_500_000
    assert batch == 6_250_000


def test_units_are_priced_at_the_per_unit_price_beside_the_tokens():
    price = Price(5_000_000, 0, per_unit_micros=40_000)
    tokens = TokenCounts(prompt_tokens=200_000)
    assert pricing.request_cost_micros(price=price, tokens=tokens, units=3) == 1_000_000 + 120_000


def test_a_model_without_a_per_unit_price_bills_no_units():
    assert pricing.units_cost_micros(price=Price(1, 1), units=1000) == 0


def test_the_admin_sets_per_unit_and_batch_prices_in_dollars(admin_client):
    from billing.models import Price

    response = admin_client.post(
        "/admin/billing/price/add/",
        {
            "model_pattern": "dall-e-9",
            "effective_from_0": "2026-01-01",
            "effective_from_1": "00:00:00",
            "source": "test",
            "input_usd": "0",
            "output_usd": "0",
            "per_unit_usd": "0.04",
            "batch_input_usd": "1.25",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    price = Price.objects.get(model_pattern="dall-e-9")
    assert price.per_unit_micros == 40_000
    assert price.batch_input_per_mtok_micros == 1_250_000
    assert price.batch_output_per_mtok_micros is None
