"""Faults: unreachable and slow upstreams, and the cool-down of a failing deployment."""

from __future__ import annotations

import openai
import pytest

from accounts import services
from common.testing import free_port, live_server
from proxy import routing
from proxy.models import Deployment, ModelRoute
from proxy.tests.conftest import UPSTREAM_KEY

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _route(org, name: str, base_url: str, upstream_model: str) -> None:
    credential = services.provider_credential_set(
        organization=org,
        provider="openai",
        key=UPSTREAM_KEY,
        base_url=base_url,
        name=name,
        actor=None,
    )
    route = ModelRoute.objects.create(organization=org, public_name=name)
    Deployment.objects.create(
        route=route, provider="openai", credential=credential, upstream_model=upstream_model
    )


def test_unreachable_upstream_is_a_502_after_retries(proxy_url, org_a, alice_key):
    # A port nobody listens on: every attempt is refused at once.
    _route(org_a, "nowhere", f"http://127.0.0.1:{free_port()}/v1", "gpt-4o")
    client = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=alice_key, max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(
            model="nowhere", messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.status_code == 502
    assert raised.value.body["code"] == "upstream_error"


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_failure_still_carries_the_rate_limit_headers(proxy_url, org_a, bob, stream):
    """The request counted against the limits, so its answer says where they stand."""
    services.role_limit_set(
        organization=org_a, role="basic", rpm_limit=5, tpm_limit=None, actor=None
    )
    _, key = services.api_key_create(organization=org_a, user=bob, actor=None)
    _route(org_a, "nowhere", f"http://127.0.0.1:{free_port()}/v1", "gpt-4o")
    client = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(
            model="nowhere", messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    headers = raised.value.response.headers
    assert raised.value.status_code == 502
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "4"
    assert headers["x-synthlang-cache"]


def test_upstream_slower_than_the_read_timeout_is_a_502_timeout(
    fake_upstream, org_a, alice_key, tmp_path
):
    _route(org_a, "too-slow", fake_upstream.v1, "fake-slow-3000")
    env = {"UPSTREAM_READ_TIMEOUT": "0.3", "UPSTREAM_MAX_RETRIES": "0"}
    with live_server(env=env, log_path=tmp_path / "proxy.log") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=alice_key, max_retries=0)
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(
                model="too-slow",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-synthlang-cache": "off"},
            )
    assert raised.value.status_code == 502
    assert raised.value.body["code"] == "upstream_timeout"


@pytest.mark.django_db
def test_a_deployment_that_keeps_failing_is_tried_last_during_its_cool_down(settings):
    settings.DEPLOYMENT_FAILURE_THRESHOLD = 2
    settings.DEPLOYMENT_COOLDOWN_SECONDS = 60
    # Two priorities, so the order is fixed (inside one priority it is a weighted draw).
    first = routing.DeploymentPlan(provider="fake", upstream_model="a", deployment_id=1)
    second = routing.DeploymentPlan(
        provider="fake", upstream_model="b", deployment_id=2, priority=1
    )
    plan = routing.RoutePlan(model="m", deployments=(first, second), routed=True)
    assert routing.attempt_order(plan) == [first, second]
    routing.deployment_failed(first.label)
    assert routing.attempt_order(plan) == [first, second]  # one failure: no cool-down yet
    routing.deployment_failed(first.label)
    assert routing.attempt_order(plan) == [second, first]
    routing.deployment_succeeded(first.label)
    assert routing.attempt_order(plan) == [first, second]
