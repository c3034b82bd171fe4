"""One deadline over a request's whole upstream work: retries and fallbacks to hung
upstreams end in OpenAI's error format with a 504, and the failed call is accounted."""

from __future__ import annotations

import time

import openai
import pytest

from accounts import services
from billing.models import UsageEvent
from billing.usage import usage_flush_run
from common.testing import live_server
from proxy.models import Deployment, ModelRoute
from proxy.tests.conftest import UPSTREAM_KEY

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _hung_route(org, name: str, base_url: str) -> None:
    """A route whose deployment and fallback both hang for a minute before answering."""
    credential = services.provider_credential_set(
        organization=org,
        provider="openai",
        key=UPSTREAM_KEY,
        base_url=base_url,
        name=name,
        actor=None,
    )
    route = ModelRoute.objects.create(organization=org, public_name=name)
    for priority in (0, 1):
        Deployment.objects.create(
            route=route,
            provider="openai",
            credential=credential,
            upstream_model="fake-slow-60000",
            priority=priority,
        )


def _usage_events(org, *, count: int, timeout: float = 20.0) -> list[UsageEvent]:
    """The server hands usage over after the response: wait for it (bounded)."""
    give_up = time.monotonic() + timeout
    while True:
        usage_flush_run()  # the events wait in the shared buffer (Redis)
        events = list(UsageEvent.objects.filter(organization=org).order_by("id"))
        if len(events) >= count or time.monotonic() > give_up:
            return events
        time.sleep(0.2)


def test_a_hung_upstream_and_its_fallback_end_in_a_504_at_the_deadline(
    fake_upstream, org_a, alice_key, tmp_path
):
    fake_upstream.reset()
    _hung_route(org_a, "hung", fake_upstream.v1)
    env = {
        "REQUEST_DEADLINE_SECONDS": "1.5",
        # Each attempt alone would wait half a minute, and a fallback follows it.
        "UPSTREAM_READ_TIMEOUT": "30",
        "UPSTREAM_STREAM_IDLE_TIMEOUT": "30",
        "UPSTREAM_MAX_RETRIES": "2",
        "ROUTE_CACHE_SECONDS": "0",
    }
    with live_server(env=env, log_path=tmp_path / "proxy.log") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=alice_key, max_retries=0)
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(
                model="hung",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-synthlang-cache": "off"},
            )
        assert raised.value.status_code == 504
        assert raised.value.body["code"] == "request_timeout"
        assert raised.value.body["type"] == "upstream_error"
        assert "1.5-second deadline" in raised.value.body["message"]

        # A stream that never sends its first chunk: the same 504, before any byte.
        with pytest.raises(openai.InternalServerError) as streamed:
            client.chat.completions.create(
                model="hung",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                extra_headers={"x-synthlang-cache": "off"},
            )
        assert streamed.value.status_code == 504
        assert streamed.value.body["code"] == "request_timeout"

        events = _usage_events(org_a, count=2)
    # The deadline cut the first deployment's attempt: the fallback was never asked.
    assert fake_upstream.stats()["requests"] == {"/v1/chat/completions fake-slow-60000": 2}
    assert [(e.status_code, e.error_code) for e in events] == [(504, "request_timeout")] * 2
    assert all(e.prompt_tokens == 0 and e.completion_tokens == 0 for e in events)
    assert all(e.cost_micros == 0 for e in events)
