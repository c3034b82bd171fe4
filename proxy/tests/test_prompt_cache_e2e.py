"""Provider prompt caching through a live proxy, with the official openai SDK as the client.

The fake upstream speaks both OpenAI's chat API and Anthropic's Messages API and caches
prompts as each provider does; the proxy marks Anthropic breakpoints, passes OpenAI a
prompt_cache_key, reports cached tokens to the client and prices them in the usage event.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

import openai
import pytest

from accounts import services
from billing.models import Price, UsageEvent
from billing.pricing import Price as PriceRates
from billing.pricing import prompt_cache_saved_micros, tokens_cost_micros, usage_tokens
from billing.selectors import price_cache_forget
from billing.usage import usage_flush_run
from common.testing import live_server
from proxy.models import Deployment, ModelRoute
from proxy.providers.prompt_cache import prompt_cache_key
from proxy.tests.conftest import UPSTREAM_KEY

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

HEADERS = {"x-synthlang-cache": "off", "x-synthlang-compression": "off"}
SONNET = PriceRates(3_000_000, 15_000_000, 300_000, 3_750_000)
GPT_4O = PriceRates(2_500_000, 10_000_000, 1_250_000)


@pytest.fixture(scope="module")
def caching_proxy(django_db_setup, tmp_path_factory):
    """A proxy that reads prices, keys and routes afresh on every request, so what a test
    writes to the database is what the proxy uses."""
    env = {
        "PRICE_CACHE_SECONDS": "0",
        "API_KEY_CACHE_SECONDS": "0",
        "ROUTE_CACHE_SECONDS": "0",
        "MODELS_CACHE_SECONDS": "0",
        "DEPLOYMENT_COOLDOWN_SECONDS": "0",
    }
    log = tmp_path_factory.mktemp("prompt-cache-proxy") / "proxy.log"
    with live_server(env=env, log_path=log) as base_url:
        yield base_url


@pytest.fixture
def prices(live_db):
    # Priced here: a transactional test's database lost the seeded prices to an earlier
    # test's flush.
    since = datetime(2020, 1, 1, tzinfo=UTC)
    Price.objects.create(
        model_pattern="claude-sonnet-4-5*",
        effective_from=since,
        input_per_mtok_micros=SONNET.input_per_mtok_micros,
        cached_input_per_mtok_micros=SONNET.cached_input_per_mtok_micros,
        cache_write_per_mtok_micros=SONNET.cache_write_per_mtok_micros,
        output_per_mtok_micros=SONNET.output_per_mtok_micros,
    )
    Price.objects.create(
        model_pattern="gpt-4o",
        effective_from=since,
        input_per_mtok_micros=GPT_4O.input_per_mtok_micros,
        cached_input_per_mtok_micros=GPT_4O.cached_input_per_mtok_micros,
        output_per_mtok_micros=GPT_4O.output_per_mtok_micros,
    )
    price_cache_forget()


def route(organization, public_name, provider, upstream_model, base_url, options=None):
    credential = services.provider_credential_set(
        organization=organization,
        provider=provider,
        key=UPSTREAM_KEY,
        base_url=base_url,
        name=f"fake-{provider}",
        options=options,
        actor=None,
    )
    model_route = ModelRoute.objects.create(organization=organization, public_name=public_name)
    Deployment.objects.create(
        route=model_route, provider=provider, credential=credential, upstream_model=upstream_model
    )


def long_system_prompt(tokens_wanted: int = 2200) -> str:
    """A system prompt no other test sends (the fake upstream's caches live per process)."""
    tag = uuid.uuid4().hex
    rules = [
        f"Rule {i} of policy {tag}: refunds for order class {i % 7} need receipt {i * 13}."
        for i in range(tokens_wanted // 20)
    ]
    return " ".join(rules)


def wait_for_usage(request_id: str, timeout: float = 15.0) -> UsageEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        price_cache_forget()
        usage_flush_run()
        event = UsageEvent.objects.filter(request_id=request_id).first()
        if event is not None:
            return event
        time.sleep(0.2)
    raise AssertionError(f"no usage event for {request_id}")


def ask(client, model: str, messages: list, **kwargs):
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=messages, extra_headers=HEADERS, **kwargs
    )
    return raw.parse(), raw.headers["x-request-id"]


def test_anthropic_route_marks_the_prefix_and_reports_and_prices_cached_tokens(
    caching_proxy, fake_upstream, org_a, alice_key, prices
):
    route(org_a, "claude-e2e", "anthropic", "claude-sonnet-4-5", fake_upstream.v1)
    client = openai.OpenAI(base_url=f"{caching_proxy}/v1", api_key=alice_key, max_retries=0)
    messages = [
        {"role": "system", "content": long_system_prompt()},
        {"role": "user", "content": "May I return a lamp bought last week?"},
    ]
    first, first_id = ask(client, "claude-e2e", messages)
    sent = fake_upstream.stats()["last_bodies"]["claude-sonnet-4-5"]
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    written = first.usage.model_extra["cache_creation_input_tokens"]
    assert written > 2000

    messages += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And a chair bought a month ago?"},
    ]
    second, second_id = ask(client, "claude-e2e", messages)
    sent = fake_upstream.stats()["last_bodies"]["claude-sonnet-4-5"]
    assert sent["messages"][1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    # What the client sees: OpenAI's usage, cached tokens a part of the prompt tokens.
    assert second.usage.prompt_tokens_details.cached_tokens == written
    assert second.usage.prompt_tokens > written

    stream = client.chat.completions.create(
        model="claude-e2e",
        messages=[*messages[:-1], {"role": "user", "content": "And a sofa?"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=HEADERS,
    )
    streamed_usage = list(stream)[-1].usage
    assert streamed_usage.prompt_tokens_details.cached_tokens >= written

    # What billing keeps: reads and writes apart, each at its rate, and the saving.
    first_event, second_event = wait_for_usage(first_id), wait_for_usage(second_id)
    assert (first_event.cached_tokens, first_event.cache_write_tokens) == (0, written)
    assert first_event.prompt_cache_saved_micros < 0  # a write costs 1.25 times
    tokens = usage_tokens(second.usage.model_dump())
    assert (second_event.cached_tokens, second_event.cache_write_tokens) == (
        tokens.cache_read_tokens,
        tokens.cache_write_tokens,
    )
    assert second_event.cost_micros == tokens_cost_micros(price=SONNET, tokens=tokens)
    assert second_event.prompt_cache_saved_micros == prompt_cache_saved_micros(
        price=SONNET, tokens=tokens
    )
    assert second_event.prompt_cache_saved_micros > -first_event.prompt_cache_saved_micros


def test_openai_route_gets_a_prompt_cache_key_and_cached_input_is_priced(
    caching_proxy, fake_upstream, org_a, alice_key, prices
):
    # A server other than api.openai.com gets the key only when its provider key says so.
    route(
        org_a, "gpt-e2e", "openai", "gpt-4o", fake_upstream.v1, options={"prompt_cache_key": True}
    )
    client = openai.OpenAI(base_url=f"{caching_proxy}/v1", api_key=alice_key, max_retries=0)
    system = {"role": "system", "content": long_system_prompt(1500)}
    ask(client, "gpt-e2e", [system, {"role": "user", "content": "Opening hours?"}])
    sent = fake_upstream.stats()["last_bodies"]["gpt-4o"]
    key = sent["prompt_cache_key"]
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert key == prompt_cache_key(scope="organization", organization_id=org_a.pk, key_id=None)

    second, second_id = ask(client, "gpt-e2e", [system, {"role": "user", "content": "Parking?"}])
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and (cached - 1024) % 128 == 0
    event = wait_for_usage(second_id)
    assert (event.cached_tokens, event.cache_write_tokens) == (cached, 0)
    tokens = usage_tokens(second.usage.model_dump())
    assert event.cost_micros == tokens_cost_micros(price=GPT_4O, tokens=tokens)
    # Half the input price on the cached part, rounded down.
    assert event.prompt_cache_saved_micros == cached * 1_250_000 // 1_000_000


def test_an_organization_that_turned_prompt_caching_off_gets_none_of_it(
    caching_proxy, fake_upstream, org_b, charlie_key, prices
):
    services.organization_update_settings(
        organization=org_b,
        actor=None,
        prompt_cache_breakpoints=False,
        prompt_cache_key_scope="off",
    )
    route(org_b, "claude-off", "anthropic", "claude-sonnet-4-5-20250929", fake_upstream.v1)
    route(
        org_b,
        "gpt-off",
        "openai",
        "gpt-4o-2024-08-06",
        fake_upstream.v1,
        {"prompt_cache_key": True},
    )
    client = openai.OpenAI(base_url=f"{caching_proxy}/v1", api_key=charlie_key, max_retries=0)
    system = {"role": "system", "content": long_system_prompt()}
    for question in ("One?", "Two?"):
        answer, _ = ask(client, "claude-off", [system, {"role": "user", "content": question}])
        assert answer.usage.prompt_tokens_details.cached_tokens == 0
    sent = fake_upstream.stats()["last_bodies"]["claude-sonnet-4-5-20250929"]
    assert isinstance(sent["system"], str)
    ask(client, "gpt-off", [system, {"role": "user", "content": "Three?"}])
    assert "prompt_cache_key" not in fake_upstream.stats()["last_bodies"]["gpt-4o-2024-08-06"]
