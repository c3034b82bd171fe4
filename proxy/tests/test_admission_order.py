"""Admission before expensive work: a refused request never pays for compression, a body
above the role's limit is refused before it is parsed, large prompts are compressed off the
event loop or not at all, and a cache hit gives back the tokens admission counted."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from accounts import services
from billing import budgets, usage
from proxy import gateway, ratelimit
from proxy.stages import compression
from proxy.synthlang import engine

# Prose with runs of spaces that the lossless level removes.
PARAGRAPH = "The quarterly report   shows revenue grew, while costs    remained flat.\n"


@pytest.fixture(autouse=True)
def _offline(settings):
    settings.OPENAI_API_KEY = ""  # the offline fake provider answers
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    usage.memory_buffer.clear()
    budgets.budget_counters_forget()
    ratelimit.reset_local_counters()
    yield
    usage.memory_buffer.clear()


@pytest.fixture
def compressor_calls(monkeypatch):
    """Every call of the chat compressor through the gateway, with whether it ran on a
    thread that has an event loop (the loop's own thread)."""
    calls: list[bool] = []
    real = engine.compress_messages

    def counting(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            calls.append(True)
        except RuntimeError:
            calls.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(compression, "compress_messages", counting)
    return calls


def _post(key: str, body: dict | bytes, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body)

    async def post():
        response = await AsyncClient().post(
            "/v1/chat/completions",
            data=data,
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}", **headers},
        )
        await asyncio.gather(*list(gateway._background))
        return response

    return async_to_sync(post)()


def _chat(text: str, **fields) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **fields}


@pytest.mark.django_db(transaction=True)
def test_a_key_refused_by_its_token_limit_is_refused_before_compression_runs(
    org_a, bob, compressor_calls
):
    services.role_limit_set(
        organization=org_a, role="basic", rpm_limit=None, tpm_limit=2_000, actor=None
    )
    _, key = services.api_key_create(organization=org_a, user=bob, actor=None)

    small = _post(key, _chat("Summarise   this, please."), **{"x-synthlang-compression": "low"})
    assert small.status_code == 200, small.content
    assert len(compressor_calls) == 1  # compression runs for an admitted request

    # About 5,000 tokens by the character estimate: over the 2,000 tokens a minute.
    large = _post(key, _chat(PARAGRAPH * 300), **{"x-synthlang-compression": "low"})
    assert large.status_code == 429, large.content
    assert large.json()["error"]["code"] == "rate_limit_exceeded"
    assert len(compressor_calls) == 1  # ...and never for a refused one


@pytest.mark.django_db(transaction=True)
def test_a_body_above_the_roles_limit_is_a_413_before_it_is_parsed(settings, bob_key, alice_key):
    settings.ROLE_MAX_BODY_BYTES = {**settings.ROLE_MAX_BODY_BYTES, "basic": 1024 * 1024}
    # Not JSON at all: a parser would answer 400, so a 413 means nothing parsed it.
    junk = b"{" + b"x" * (1024 * 1024 + 10)

    refused = _post(bob_key, junk)
    assert refused.status_code == 413
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_too_large")
    assert "basic role allows at most 1 MB" in error["message"]

    parsed = _post(alice_key, junk)  # the admin role's limit is the platform's (50 MB)
    assert parsed.status_code == 400
    assert parsed.json()["error"]["code"] == "invalid_json"


@pytest.mark.django_db(transaction=True)
def test_a_large_prompt_is_compressed_off_the_event_loop(alice_key, compressor_calls):
    text = PARAGRAPH * 600  # above OFF_LOOP_PROMPT_CHARS, below LARGE_PROMPT_CHARS
    assert len(text) > compression.OFF_LOOP_PROMPT_CHARS
    response = _post(
        alice_key, _chat(text), **{"x-synthlang-compression": "low", "x-synthlang-cache": "off"}
    )
    assert response.status_code == 200, response.content
    assert compressor_calls == [False]  # ran on a pool thread, not the loop's
    assert response["x-synthlang-compression"] == "low"

    compressor_calls.clear()
    small = _post(alice_key, _chat("Hello   there"), **{"x-synthlang-compression": "low"})
    assert small.status_code == 200
    assert compressor_calls == [True]  # a small one is not worth a thread hop


@pytest.mark.django_db(transaction=True)
def test_a_prompt_above_the_large_prompt_size_goes_upstream_uncompressed(
    settings, alice_key, compressor_calls
):
    settings.LARGE_PROMPT_CHARS = 10_000
    response = _post(
        alice_key,
        _chat(PARAGRAPH * 200),
        **{"x-synthlang-compression": "low", "x-synthlang-cache": "off"},
    )
    assert response.status_code == 200, response.content
    assert compressor_calls == []
    assert response["x-synthlang-compression"] == "off"
    assert response["x-synthlang-tokens-saved"] == "0"
    # The answer's usage is the upstream's own count of the uncompressed prompt.
    assert response.json()["usage"]["prompt_tokens"] > 2_000


@pytest.mark.django_db(transaction=True)
def test_a_cache_hit_gives_back_the_tokens_admission_counted(org_a, bob):
    services.role_limit_set(
        organization=org_a, role="basic", rpm_limit=None, tpm_limit=2_000, actor=None
    )
    _, key = services.api_key_create(organization=org_a, user=bob, actor=None)
    # Admission counts 1,500 completion tokens for each: two such requests would not fit in
    # 2,000 tokens a minute unless each hit settles back to nothing.
    body = _chat("What is the capital of France?", max_tokens=1_500)
    first = _post(key, body)
    assert first.status_code == 200, first.content
    assert first["x-synthlang-cache"] == "miss"
    for _ in range(3):
        hit = _post(key, body)
        assert hit.status_code == 200, hit.content
        assert hit["x-synthlang-cache"] == "hit"
