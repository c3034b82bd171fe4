"""The cost maths: integers only, rounded up once per request, cached tokens cheaper."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import (
    Price,
    cost_micros,
    estimate_cost_micros,
    micros_to_usd,
    tokens_value_micros,
    usd_to_micros,
)

tokens = st.integers(min_value=0, max_value=10_000_000)
rates = st.integers(min_value=0, max_value=200_000_000)  # up to $200 per Mtok


@st.composite
def prices(draw):
    input_rate = draw(rates)
    cached = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=input_rate)))
    return Price(input_rate, draw(rates), cached)


@st.composite
def usages(draw):
    prompt = draw(tokens)
    return prompt, draw(tokens), draw(st.integers(min_value=0, max_value=prompt))


def test_gpt_4o_list_price_example():
    gpt_4o = Price(2_500_000, 10_000_000, 1_250_000)
    # 1000 in at $2.50/M = 2500 micros, 500 out at $10/M = 5000 micros.
    assert cost_micros(price=gpt_4o, prompt_tokens=1000, completion_tokens=500) == 7500
    # 400 of the prompt tokens cached at half price: 600*2.5 + 400*1.25 + 5000.
    assert (
        cost_micros(price=gpt_4o, prompt_tokens=1000, completion_tokens=500, cached_tokens=400)
        == 7000
    )


def test_a_fraction_of_a_micro_dollar_is_rounded_up_once_per_request():
    mini = Price(150_000, 600_000, 75_000)  # gpt-4o-mini
    # 1 token in = 0.15 micros, 1 token out = 0.6 micros: 0.75 rounds up to 1, not 1 + 1.
    assert cost_micros(price=mini, prompt_tokens=1, completion_tokens=1) == 1
    assert cost_micros(price=mini, prompt_tokens=0, completion_tokens=0) == 0


@given(price=prices(), usage=usages())
def test_cost_is_a_non_negative_integer_within_one_micro_of_the_exact_cost(price, usage):
    prompt, completion, cached = usage
    cost = cost_micros(
        price=price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached
    )
    exact = (
        Decimal((prompt - cached) * price.input_per_mtok_micros)
        + Decimal(cached * price.cached_rate)
        + Decimal(completion * price.output_per_mtok_micros)
    ) / Decimal(1_000_000)
    assert isinstance(cost, int)
    assert cost >= 0
    assert exact <= cost < exact + 1


@given(price=prices(), usage=usages(), extra=st.integers(min_value=0, max_value=100_000))
def test_cost_never_falls_when_tokens_grow(price, usage, extra):
    prompt, completion, cached = usage
    base = cost_micros(
        price=price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached
    )
    more_prompt = cost_micros(
        price=price,
        prompt_tokens=prompt + extra,
        completion_tokens=completion,
        cached_tokens=cached,
    )
    more_completion = cost_micros(
        price=price,
        prompt_tokens=prompt,
        completion_tokens=completion + extra,
        cached_tokens=cached,
    )
    assert more_prompt >= base
    assert more_completion >= base


@given(price=prices(), usage=usages())
def test_cached_tokens_never_cost_more_than_uncached(price, usage):
    prompt, completion, cached = usage
    with_cache = cost_micros(
        price=price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached
    )
    without = cost_micros(price=price, prompt_tokens=prompt, completion_tokens=completion)
    assert with_cache <= without


@given(price=prices(), prompt=tokens, completion=tokens, reported=tokens)
def test_more_cached_than_prompt_tokens_is_clamped(price, prompt, completion, reported):
    cost = cost_micros(
        price=price, prompt_tokens=prompt, completion_tokens=completion, cached_tokens=reported
    )
    all_cached = cost_micros(
        price=price,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=min(reported, prompt),
    )
    assert cost == all_cached >= 0


@given(price=prices(), prompt=tokens, max_tokens=tokens, completion=tokens, cached=tokens)
def test_an_estimate_covers_any_answer_within_max_tokens(
    price, prompt, max_tokens, completion, cached
):
    estimate = estimate_cost_micros(price=price, prompt_tokens=prompt, max_tokens=max_tokens)
    actual = cost_micros(
        price=price,
        prompt_tokens=prompt,
        completion_tokens=min(completion, max_tokens),
        cached_tokens=min(cached, prompt),
    )
    assert actual <= estimate


def test_an_estimate_without_max_tokens_uses_the_default_allowance():
    price = Price(1_000_000, 1_000_000)
    assert estimate_cost_micros(price=price, prompt_tokens=0) == 1024
    assert estimate_cost_micros(price=price, prompt_tokens=0, default_completion_tokens=10) == 10


@given(price=prices(), saved=tokens)
def test_compression_savings_are_rounded_down_never_overstated(price, saved):
    value = tokens_value_micros(price=price, input_tokens=saved)
    exact = Decimal(saved * price.input_per_mtok_micros) / Decimal(1_000_000)
    assert exact - 1 < value <= exact


def test_a_cached_price_above_the_input_price_is_refused():
    with pytest.raises(ValueError, match="cached-input"):
        Price(1_000_000, 2_000_000, 1_000_001)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_prices_are_non_negative_integers(bad):
    with pytest.raises(ValueError):
        Price(bad, 0)


def test_dollars_convert_to_micros_exactly_and_floats_are_refused():
    assert usd_to_micros("2.50") == 2_500_000
    assert usd_to_micros(Decimal("0.075")) == 75_000
    assert usd_to_micros(3) == 3_000_000
    with pytest.raises(TypeError):
        usd_to_micros(0.1)
    assert micros_to_usd(7_500) == "0.007500"
    assert micros_to_usd(-1) == "-0.000001"
    assert micros_to_usd(12_345_678_901) == "12345.678901"
