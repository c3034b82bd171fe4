"""Retries and fallback on the upstream path: how long the proxy waits, and when it stops.

No server and no clock: the upstream is a scripted provider, and ``asyncio.sleep`` only
records the pause the gateway asked for.
"""

from __future__ import annotations

import asyncio

import pytest

from accounts.selectors import Principal
from proxy import gateway, providers, routing, upstream_calls
from proxy.providers.base import Target, UpstreamError, UpstreamResult, classify_status

SCRIPTED = "scripted"
PRIMARY = routing.DeploymentPlan(provider=SCRIPTED, upstream_model="primary", deployment_id=1)
# A lower priority, so the order is fixed (inside one priority it is a weighted draw).
SECONDARY = routing.DeploymentPlan(
    provider=SCRIPTED, upstream_model="secondary", deployment_id=2, priority=1
)


class ScriptedProvider:
    """Answers each upstream model from its script: an UpstreamError is raised, anything
    else is the answer. The last entry repeats once the script runs out."""

    name = SCRIPTED

    def __init__(self, scripts: dict[str, list]):
        self.scripts = scripts
        self.calls: list[str] = []

    async def chat(self, target: Target, body: dict) -> UpstreamResult:
        self.calls.append(target.upstream_model)
        script = self.scripts[target.upstream_model]
        outcome = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(outcome, Exception):
            raise outcome
        return UpstreamResult(body={"answered_by": target.upstream_model})


@pytest.fixture
def backoff_settings(settings):
    settings.UPSTREAM_MAX_RETRIES = 2
    settings.UPSTREAM_BACKOFF_BASE = 0.25
    settings.UPSTREAM_BACKOFF_MAX = 8.0
    return settings


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The pauses the gateway asks for, without pausing."""
    asked: list[float] = []

    async def record(delay, result=None):
        asked.append(delay)
        return result

    monkeypatch.setattr(gateway.asyncio, "sleep", record)
    return asked


@pytest.fixture
def upstream(monkeypatch):
    def install(**scripts: list) -> ScriptedProvider:
        provider = ScriptedProvider(scripts)
        monkeypatch.setitem(providers.PROVIDERS, SCRIPTED, provider)
        return provider

    return install


def _call() -> gateway.ProxyCall:
    principal = Principal(
        key_id=1,
        key_prefix="sk-test",
        organization_id=1,
        organization_slug="org-a",
        user_id=1,
        username="alice",
        role="admin",
        expires_at=None,
    )
    return gateway.ProxyCall(
        principal=principal,
        request_id="req_retry_test",
        endpoint="chat.completions",
        model="smart",
        body={"model": "smart", "messages": [{"role": "user", "content": "hi"}]},
    )


def _run(call: gateway.ProxyCall, *deployments: routing.DeploymentPlan):
    plan = routing.RoutePlan(model=call.model, deployments=deployments, routed=True)

    async def operation(provider, target):
        return await provider.chat(target, call.body)

    return asyncio.run(gateway.call_upstream(call, plan, operation))


def _rate_limited(retry_after: float | None):
    # What the HTTP layer makes of a 429 with a Retry-After header.
    return classify_status(429, {"error": {"message": "slow down"}}, retry_after)


def test_backoff_ceiling_doubles_per_attempt_up_to_the_maximum(settings, monkeypatch):
    settings.UPSTREAM_BACKOFF_BASE = 0.25
    settings.UPSTREAM_BACKOFF_MAX = 2.0
    ranges: list[tuple[float, float]] = []

    def highest(low, high):
        ranges.append((low, high))
        return high

    monkeypatch.setattr(upstream_calls.random, "uniform", highest)

    delays = [gateway._backoff(attempt, None) for attempt in range(6)]

    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert ranges == [(c / 2, c) for c in delays]


def test_backoff_jitter_stays_between_half_the_ceiling_and_the_ceiling(settings):
    settings.UPSTREAM_BACKOFF_BASE = 0.25
    settings.UPSTREAM_BACKOFF_MAX = 2.0
    for attempt, ceiling in [(0, 0.25), (2, 1.0), (3, 2.0), (7, 2.0)]:
        draws = [gateway._backoff(attempt, None) for _ in range(2000)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in draws), attempt
        # Jittered, not a constant: the draws cover most of the allowed range.
        assert max(draws) - min(draws) > ceiling / 4, attempt


def test_a_retry_after_longer_than_the_backoff_is_honoured(backoff_settings, sleeps, upstream):
    provider = upstream(primary=[_rate_limited(retry_after=3.0), "ok"], secondary=["ok"])
    call = _call()

    result = _run(call, PRIMARY, SECONDARY)

    assert result.body == {"answered_by": "primary"}
    assert provider.calls == ["primary", "primary"]
    assert len(sleeps) == 1 and sleeps[0] >= 3.0  # the computed backoff was at most 0.25
    assert call.deployment == PRIMARY.label


def test_a_retry_after_beyond_the_backoff_maximum_moves_on_without_sleeping(
    backoff_settings, sleeps, upstream
):
    provider = upstream(primary=[_rate_limited(retry_after=30.0)], secondary=["ok"])
    call = _call()

    result = _run(call, PRIMARY, SECONDARY)

    assert result.body == {"answered_by": "secondary"}
    assert provider.calls == ["primary", "secondary"]
    assert sleeps == []
    assert (call.deployment, call.upstream_model) == (SECONDARY.label, "secondary")


def test_a_retryable_failure_is_retried_with_backoff_then_falls_back(
    backoff_settings, sleeps, upstream
):
    provider = upstream(primary=[classify_status(503, None, None)], secondary=["ok"])
    call = _call()

    result = _run(call, PRIMARY, SECONDARY)

    assert result.body == {"answered_by": "secondary"}
    assert provider.calls == ["primary"] * 3 + ["secondary"]  # 1 try + UPSTREAM_MAX_RETRIES
    assert len(sleeps) == 2
    assert 0.125 <= sleeps[0] <= 0.25 and 0.25 <= sleeps[1] <= 0.5


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_client_error_is_final_neither_retried_nor_sent_to_another_deployment(
    backoff_settings, sleeps, upstream, status
):
    provider = upstream(primary=[classify_status(status, None, None)], secondary=["ok"])

    with pytest.raises(UpstreamError) as raised:
        _run(_call(), PRIMARY, SECONDARY)

    assert raised.value.upstream_status == status
    assert provider.calls == ["primary"]
    assert sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_provider_key_is_not_retried_but_falls_back(
    backoff_settings, sleeps, upstream, status
):
    provider = upstream(primary=[classify_status(status, None, None)], secondary=["ok"])

    result = _run(_call(), PRIMARY, SECONDARY)

    assert result.body == {"answered_by": "secondary"}
    assert provider.calls == ["primary", "secondary"]
    assert sleeps == []


def test_the_last_error_reaches_the_client_when_every_deployment_refuses(
    backoff_settings, sleeps, upstream
):
    provider = upstream(primary=[classify_status(401, None, None)], secondary=[_rate_limited(60)])

    with pytest.raises(UpstreamError) as raised:
        _run(_call(), PRIMARY, SECONDARY)

    assert raised.value.code == "rate_limit_exceeded"
    assert raised.value.headers["retry-after"] == "60"
    assert provider.calls == ["primary", "secondary"]
    assert sleeps == []
