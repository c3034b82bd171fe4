"""What a proxied request leaves in billing: one UsageEvent row that says who, what and how long."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from accounts.models import ApiKey
from billing import usage
from billing.models import UsageEvent
from common.outages import redis_outage
from proxy import gateway


@pytest.fixture(autouse=True)
def _empty_usage_buffer(settings):
    # The test drains the buffer itself; a flusher thread would race it.
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    usage.memory_buffer.clear()
    yield
    usage.memory_buffer.clear()


@pytest.mark.django_db(transaction=True)
def test_a_chat_request_is_stored_as_one_usage_event_with_every_field(
    settings, org_a, alice, alice_key
):
    settings.OPENAI_API_KEY = ""  # the offline fake provider answers
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})
    headers = {"Authorization": f"Bearer {alice_key}", "x-synthlang-cache": "off"}

    async def request():
        response = await AsyncClient().post(
            "/v1/chat/completions", data=body, content_type="application/json", headers=headers
        )
        await asyncio.gather(*list(gateway._background))  # accounting runs after the response
        return response

    response = async_to_sync(request)()
    usage.usage_flush_run()

    assert response.status_code == 200
    answer = response.json()
    request_id = response["x-request-id"]
    assert request_id
    event = UsageEvent.objects.get(request_id=request_id)
    key = ApiKey.objects.get(user=alice)
    assert (event.organization_id, event.user_id, event.api_key_id) == (org_a.pk, alice.pk, key.pk)
    assert (event.endpoint, event.model, event.upstream_model) == (
        "chat.completions",
        "gpt-4o",
        answer["model"],
    )
    assert (event.provider, event.deployment) == ("fake", "fake/gpt-4o")
    assert (event.prompt_tokens, event.completion_tokens) == (
        answer["usage"]["prompt_tokens"],
        answer["usage"]["completion_tokens"],
    )
    assert event.prompt_tokens > 0 and event.completion_tokens > 0
    assert (event.status_code, event.error_code, event.stream) == (200, "", False)
    assert event.upstream_ms > 0
    assert event.latency_ms >= event.upstream_ms
    assert event.overhead_ms > 0


@pytest.mark.django_db(transaction=True)
def test_the_async_hand_off_keeps_the_event_in_process_when_redis_is_down(
    settings, caplog, org_a, alice
):
    settings.CACHE_TYPE = "redis"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    event = {
        "request_id": f"req-{uuid.uuid4().hex}",
        "created_at": datetime.now(UTC).isoformat(),
        "organization_id": org_a.pk,
        "user_id": alice.pk,
        "api_key_id": None,
        "endpoint": "chat.completions",
        "model": "gpt-4o",
        "upstream_model": "gpt-4o",
        "provider": "fake",
        "deployment": "fake/gpt-4o",
        "prompt_tokens": 12,
        "completion_tokens": 7,
        "status_code": 200,
        "latency_ms": 5.0,
        "upstream_ms": 4.0,
        "overhead_ms": 1.0,
    }

    # A fresh loop, so the write batcher connects to the dead address; must not raise.
    asyncio.run(usage.ausage_record(event))
    assert redis_outage.down  # Redis was tried, and failed
    usage.usage_flush_run(redis=False)  # what this process's own flusher drains

    stored = UsageEvent.objects.get(request_id=event["request_id"])
    assert (stored.organization_id, stored.user_id) == (org_a.pk, alice.pk)
    assert (stored.prompt_tokens, stored.completion_tokens) == (12, 7)
