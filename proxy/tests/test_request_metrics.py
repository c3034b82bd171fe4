"""Every request is counted once in the metrics, whichever way it ends: served, refused
before it became a call (bad key, bad body), refused by a limit, or broken by a bug."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from prometheus_client import REGISTRY

from accounts import services
from billing.models import UsageEvent
from billing.usage import usage_flush_run
from proxy import gateway, metrics
from proxy.providers import PROVIDERS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def known_model_names():
    # A process loads the names it labels by in the background on its first request, which
    # is then labelled "other"; these tests count by model, so the names are loaded first.
    metrics.known_models.refresh()


HELLO = [{"role": "user", "content": "How many legs does a spider have?"}]


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests_counted(status: str, model: str = "gpt-4o") -> float:
    return sample(
        "synthlang_requests_total", endpoint="chat.completions", model=model, status=status
    )


def post_chat(key: str, body: bytes | dict):
    data = body if isinstance(body, bytes) else json.dumps(body)
    headers = {"Authorization": f"Bearer {key}", "x-synthlang-cache": "off"}

    async def run():
        response = await AsyncClient().post(
            "/v1/chat/completions", data=data, content_type="application/json", headers=headers
        )
        await asyncio.gather(*list(gateway._background))  # finish() counts after the answer
        return response

    return async_to_sync(run)()


def test_a_served_request_counts_its_status_tokens_and_times(alice_key):
    before = {
        "served": requests_counted("200"),
        "prompt": sample("synthlang_tokens_total", direction="prompt", model="gpt-4o"),
        "completion": sample("synthlang_tokens_total", direction="completion", model="gpt-4o"),
        "overhead": sample("synthlang_proxy_overhead_seconds_count", endpoint="chat.completions"),
        "upstream": sample("synthlang_upstream_latency_seconds_count", provider="fake"),
    }
    response = post_chat(alice_key, {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 200
    usage = json.loads(response.content)["usage"]
    assert requests_counted("200") == before["served"] + 1
    prompt = sample("synthlang_tokens_total", direction="prompt", model="gpt-4o")
    completion = sample("synthlang_tokens_total", direction="completion", model="gpt-4o")
    assert prompt == before["prompt"] + usage["prompt_tokens"]
    assert completion == before["completion"] + usage["completion_tokens"]
    assert (
        sample("synthlang_proxy_overhead_seconds_count", endpoint="chat.completions")
        == before["overhead"] + 1
    )
    assert (
        sample("synthlang_upstream_latency_seconds_count", provider="fake")
        == before["upstream"] + 1
    )


@pytest.mark.parametrize(
    ("key", "body", "status"),
    [
        ("sk-not-a-key", {"model": "gpt-4o", "messages": HELLO}, "401"),
        (None, b'{"model": "gpt-4o", "messages": [', "400"),
        (None, {"model": "gpt-4o", "messages": "not a list"}, "400"),
    ],
)
def test_a_request_refused_before_it_becomes_a_call_is_counted_without_a_model(
    alice_key, key, body, status
):
    before = requests_counted(status, model="")
    response = post_chat(key or alice_key, body)
    assert response.status_code == int(status)
    assert requests_counted(status, model="") == before + 1


def test_a_rate_limited_request_is_counted_once_with_its_limit(org_a, bob):
    services.role_limit_set(
        organization=org_a, role="basic", rpm_limit=1, tpm_limit=None, actor=None
    )
    _, key = services.api_key_create(organization=org_a, user=bob, actor=None)
    refused_before = sample("synthlang_rate_limited_total", scope="member", kind="requests")
    counted_before = requests_counted("429") + requests_counted("429", model="")
    assert post_chat(key, {"model": "gpt-4o", "messages": HELLO}).status_code == 200
    assert post_chat(key, {"model": "gpt-4o", "messages": HELLO}).status_code == 429
    refused = sample("synthlang_rate_limited_total", scope="member", kind="requests")
    assert refused == refused_before + 1
    assert requests_counted("429") + requests_counted("429", model="") == counted_before + 1


def test_a_bug_is_a_500_counted_once_under_its_model_and_accounted(alice_key, monkeypatch):
    async def broken_chat(target, body):
        raise RuntimeError("a bug, not an upstream failure")

    monkeypatch.setattr(PROVIDERS["fake"], "chat", broken_chat)
    before = {"model": requests_counted("500"), "no model": requests_counted("500", model="")}
    response = post_chat(alice_key, {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["type"] == "server_error"
    assert response["x-synthlang-cache"] == "off"  # the call's headers, as on any error
    assert requests_counted("500") == before["model"] + 1
    assert requests_counted("500", model="") == before["no model"]
    usage_flush_run()
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert (event.status_code, event.error_code, event.model) == (500, "server_error", "gpt-4o")
