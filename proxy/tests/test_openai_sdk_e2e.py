"""The official openai SDK against a real proxy process (Daphne) and real upstreams."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import httpx2 as httpx
import openai
import pytest

from accounts import services
from billing.models import UsageEvent
from billing.usage import usage_flush_run

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def sdk(proxy_url: str, key: str, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=key, max_retries=0, **kwargs)


def async_sdk(proxy_url: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{proxy_url}/v1", api_key=key, max_retries=0)


def wait_for_usage(request_id: str, timeout: float = 15.0) -> UsageEvent:
    """Flush the usage buffer as the Celery worker would, until the event shows up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        usage_flush_run()
        event = UsageEvent.objects.filter(request_id=request_id).first()
        if event is not None:
            return event
        time.sleep(0.2)
    raise AssertionError(f"no usage event for {request_id}")


def test_sync_client_gets_a_chat_completion_with_proxy_headers(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello to Ada"}]
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert "Say hello to Ada" in completion.choices[0].message.content
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-synthlang-cache"] in {"hit", "miss", "off"}
    assert int(raw.headers["x-synthlang-tokens-saved"]) >= 0
    assert float(raw.headers["x-synthlang-overhead-ms"]) >= 0
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.prompt_tokens == completion.usage.prompt_tokens
    assert event.completion_tokens == completion.usage.completion_tokens


def test_request_without_model_uses_the_default_model(proxy_url, alice_key, settings):
    completion = sdk(proxy_url, alice_key).chat.completions.create(
        model="", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.model == settings.DEFAULT_MODEL


def test_async_client_gets_a_chat_completion(proxy_url, alice_key):
    async def run():
        async with async_sdk(proxy_url, alice_key) as client:
            return await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "async works"}]
            )

    completion = asyncio.run(run())
    assert "async works" in completion.choices[0].message.content


def test_stream_without_usage_request_carries_no_usage_chunk(proxy_url, alice_key):
    stream = sdk(proxy_url, alice_key).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stream me"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "stream me" in text
    assert all(chunk.usage is None for chunk in chunks)


def test_stream_with_include_usage_ends_with_the_usage_chunk(proxy_url, alice_key):
    stream = sdk(proxy_url, alice_key).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "count me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_fifty_concurrent_streams_all_complete(proxy_url, alice_key):
    async def one(client, index):
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": f"stream number {index}"}],
            stream=True,
        )
        text = ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        return text

    async def run():
        async with async_sdk(proxy_url, alice_key) as client:
            return await asyncio.gather(*(one(client, i) for i in range(50)))

    texts = asyncio.run(run())
    assert [f"number {i}" in text for i, text in enumerate(texts)] == [True] * 50


def test_legacy_completions_and_embeddings_answer(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    completion = client.completions.create(model="gpt-4o-mini", prompt="Once upon a time")
    assert completion.object == "text_completion"
    assert "Once upon a time" in completion.choices[0].text
    embedding = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    assert [item.index for item in embedding.data] == [0, 1]
    assert embedding.usage.prompt_tokens > 0


def test_models_list_and_retrieve(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    ids = [model.id for model in client.models.list()]
    assert "gpt-4o" in ids
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_unknown_key_raises_authentication_error(proxy_url, live_db):
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(proxy_url, "sk-syn-" + "A" * 48).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.body["code"] == "invalid_api_key"


def test_invalid_parameters_raise_bad_request_error(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], temperature=7
        )
    assert raised.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=[])


def test_rate_limit_raises_rate_limit_error_with_retry_after(proxy_url, org_a, bob, live_db):
    services.role_limit_set(
        organization=org_a, role="basic", rpm_limit=2, tpm_limit=None, actor=None
    )
    _, key = services.api_key_create(organization=org_a, user=bob, actor=None)
    client = sdk(proxy_url, key)
    for _ in range(2):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    response = raised.value.response
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert raised.value.body["code"] == "rate_limit_exceeded"


def test_model_outside_the_keys_allowance_is_refused(proxy_url, org_a, alice, live_db):
    _, key = services.api_key_create(
        organization=org_a, user=alice, actor=None, allowed_models=["gpt-4o-mini"]
    )
    client = sdk(proxy_url, key)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "ok"}]
    )
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "no"}])
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]


def test_upstream_server_error_after_retries_raises_internal_server_error(
    proxy_url, alice_key, route_to, fake_upstream
):
    route_to("always-broken", ("fake-fail-500", 0))
    with pytest.raises(openai.InternalServerError) as raised:
        sdk(proxy_url, alice_key).chat.completions.create(
            model="always-broken", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.status_code == 502
    # One try and two retries reached the upstream.
    assert fake_upstream.stats()["requests"]["/v1/chat/completions fake-fail-500"] == 3


def test_upstream_rejecting_the_provider_key_is_a_502_not_a_401(
    proxy_url, alice_key, org_a, fake_upstream, live_db
):
    from proxy.models import Deployment, ModelRoute

    wrong = services.provider_credential_set(
        organization=org_a,
        provider="openai",
        key="sk-wrong-upstream-key",
        name="wrong",
        base_url=fake_upstream.v1,
        actor=None,
    )
    route = ModelRoute.objects.create(organization=org_a, public_name="wrong-key-model")
    Deployment.objects.create(
        route=route, provider="openai", credential=wrong, upstream_model="gpt-4o"
    )
    with pytest.raises(openai.APIStatusError) as raised:
        sdk(proxy_url, alice_key).chat.completions.create(
            model="wrong-key-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.status_code == 502
    assert raised.value.body["code"] == "upstream_auth_failed"


def test_retry_recovers_from_transient_upstream_failures(
    proxy_url, alice_key, route_to, fake_upstream
):
    fake_upstream.reset()
    route_to("flaky-model", ("fake-flaky-2", 0))
    completion = sdk(proxy_url, alice_key).chat.completions.create(
        model="flaky-model", messages=[{"role": "user", "content": "third time lucky"}]
    )
    assert "third time lucky" in completion.choices[0].message.content
    assert fake_upstream.stats()["requests"]["/v1/chat/completions fake-flaky-2"] == 3


def test_fallback_to_the_next_deployment_when_the_first_fails(
    proxy_url, alice_key, route_to, fake_upstream
):
    fake_upstream.reset()
    route_to("with-fallback", ("fake-fail-503", 0), ("gpt-4o-mini", 1))
    completion = sdk(proxy_url, alice_key).chat.completions.create(
        model="with-fallback", messages=[{"role": "user", "content": "fall back"}]
    )
    assert completion.model == "gpt-4o-mini"
    requests = fake_upstream.stats()["requests"]
    assert requests["/v1/chat/completions fake-fail-503"] >= 1
    assert requests["/v1/chat/completions gpt-4o-mini"] == 1


def test_unknown_fields_pass_through_to_the_upstream(proxy_url, alice_key, route_to, fake_upstream):
    route_to("passthrough", ("passthrough-upstream", 0))
    extra = {
        "seed": 42,
        "logit_bias": {"50256": -100},
        "user": "end-user-7",
        "response_format": {"type": "json_object"},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                },
            }
        ],
        "max_tokens": 50,
        "vendor_specific_knob": {"depth": 3},
    }
    sdk(proxy_url, alice_key).chat.completions.create(
        model="passthrough",
        messages=[{"role": "user", "content": "json please"}],
        extra_body={"vendor_specific_knob": extra.pop("vendor_specific_knob")},
        **extra,
    )
    seen = fake_upstream.stats()["last_bodies"]["passthrough-upstream"]
    assert seen["model"] == "passthrough-upstream"
    for name, value in extra.items():
        assert seen[name] == value
    assert seen["vendor_specific_knob"] == {"depth": 3}


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "gpt-4o", "messages": [',
        # Python's parser reads these, but they are not JSON and no upstream takes them.
        b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "top_p": NaN}',
        b'{"model": "gpt-4o", "messages": [], "temperature": -Infinity}',
        # Valid JSON, but no float: read as inf, it would reach the upstream as null.
        b'{"model": "gpt-4o", "messages": [], "vendor_knob": 1e400}',
        # An encoded surrogate is not UTF-8, though Python's parser reads it from bytes.
        b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "cut \xed\xa0\xbd"}]}',
        # Deeper than Python's parser can recurse.
        b'{"model": "gpt-4o", "messages": [], "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        # JSON exchanged between systems is UTF-8 (RFC 8259 section 8.1).
        '{"model": "gpt-4o", "messages": []}'.encode("utf-16"),
    ],
)
def test_malformed_json_is_a_400_in_openai_format(proxy_url, alice_key, body):
    request = urllib.request.Request(
        f"{proxy_url}/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 400
    body = json.loads(raised.value.read())
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "invalid_json"


def _post_raw(proxy_url, key, body: bytes, path="/v1/chat/completions") -> httpx.Response:
    return httpx.post(
        f"{proxy_url}{path}",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=10,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_escaped_emoji_go_upstream_and_come_back(proxy_url, alice_key, stream):
    """Clients that write ASCII-only JSON escape an emoji as a surrogate pair."""
    response = _post_raw(
        proxy_url,
        alice_key,
        b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "ship \\ud83d\\ude80 it"}],'
        b' "stream": ' + (b"true" if stream else b"false") + b"}",
    )
    assert response.status_code == 200
    if stream:
        chunks = [
            json.loads(line[6:])
            for line in response.text.splitlines()
            if line.startswith("data: {")
        ]
        deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
        answer = "".join(delta.get("content") or "" for delta in deltas)
    else:
        answer = response.json()["choices"][0]["message"]["content"]
    assert "\U0001f680" in answer


def test_embeddings_pass_stream_fields_they_do_not_use_through(proxy_url, alice_key):
    body = (
        b'{"model": "text-embedding-3-small", "input": "x",'
        b' "stream": true, "stream_options": "yes"}'
    )
    response = _post_raw(proxy_url, alice_key, body, path="/v1/embeddings")
    assert response.status_code == 200
    assert response.json()["object"] == "list"


def test_half_an_emoji_is_a_400_not_a_server_error(proxy_url, alice_key):
    response = _post_raw(
        proxy_url,
        alice_key,
        b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "cut \\ud83d here"}]}',
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert "surrogate" in error["message"]


def test_x_api_key_header_is_accepted(proxy_url, alice_key):
    response = httpx.get(f"{proxy_url}/v1/models", headers={"x-api-key": alice_key})
    assert response.status_code == 200
    assert response.json()["object"] == "list"


def test_client_hanging_up_mid_stream_cancels_upstream_and_is_still_accounted(
    proxy_url, alice_key, route_to, fake_upstream
):
    fake_upstream.reset()
    # 40 ms between chunks upstream: the client leaves after the third.
    route_to("slow-stream", ("fake-slow-400", 0))
    body = {
        "model": "slow-stream",
        "stream": True,
        "messages": [{"role": "user", "content": " ".join(f"word{i}" for i in range(40))}],
    }
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            f"{proxy_url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {alice_key}"},
        ) as response,
    ):
        request_id = response.headers["x-request-id"]
        events = 0
        for line in response.iter_lines():
            if line.startswith("data:"):
                events += 1
            if events == 3:
                break
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and fake_upstream.stats()["streams_abandoned"] < 1:
        time.sleep(0.1)
    stats = fake_upstream.stats()
    assert stats["streams_abandoned"] == 1
    assert stats["streams_completed"] == 0
    event = wait_for_usage(request_id)
    assert event.client_disconnected is True
    assert event.completion_tokens > 0
    assert event.prompt_tokens > 0
