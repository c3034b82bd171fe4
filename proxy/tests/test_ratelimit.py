"""Rate limits: the sliding-window arithmetic, OpenAI's headers, and that a limit holds
under concurrency and across two proxy processes sharing Redis."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest
from asgiref.sync import async_to_sync

from accounts import services
from accounts.selectors import principal_for_key
from common.testing import live_server
from proxy import ratelimit


def _wait_for_fresh_window(margin: float = 8.0) -> None:
    """Start near the beginning of a minute so the test never straddles two windows."""
    elapsed = time.time() % ratelimit.WINDOW_SECONDS
    if elapsed > ratelimit.WINDOW_SECONDS - margin:
        time.sleep(ratelimit.WINDOW_SECONDS - elapsed + 0.2)


@pytest.mark.django_db
def test_requests_beyond_the_rpm_limit_are_refused_with_retry_after(org_a, bob):
    services.role_limit_set(
        organization=org_a, role="basic", rpm_limit=3, tpm_limit=None, actor=None
    )
    _, key = services.api_key_create(organization=org_a, user=bob, actor=None)
    principal = principal_for_key(key)
    _wait_for_fresh_window()
    admissions = [async_to_sync(ratelimit.admit)(principal, tokens=10) for _ in range(3)]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in admissions] == ["2", "1", "0"]
    with pytest.raises(ratelimit.RateLimited) as raised:
        async_to_sync(ratelimit.admit)(principal, tokens=10)
    assert raised.value.status == 429
    assert 1 <= int(raised.value.headers["retry-after"]) <= 61
    assert raised.value.headers["x-ratelimit-limit-requests"] == "3"


@pytest.mark.django_db
def test_token_limit_counts_the_estimate_and_settles_to_the_real_usage(org_a, bob):
    services.role_limit_set(
        organization=org_a, role="basic", rpm_limit=None, tpm_limit=1000, actor=None
    )
    _, key = services.api_key_create(organization=org_a, user=bob, actor=None)
    principal = principal_for_key(key)
    _wait_for_fresh_window()
    admission = async_to_sync(ratelimit.admit)(principal, tokens=900)
    with pytest.raises(ratelimit.RateLimited):
        async_to_sync(ratelimit.admit)(principal, tokens=200)
    # The request really used 100 tokens: 800 are free again.
    async_to_sync(ratelimit.settle_tokens)(admission, actual_tokens=100)
    second = async_to_sync(ratelimit.admit)(principal, tokens=800)
    assert second.headers["x-ratelimit-remaining-tokens"] == "100"


@pytest.mark.django_db
def test_admin_role_is_unlimited_by_default(alice_key):
    principal = principal_for_key(alice_key)
    for _ in range(200):
        admission = async_to_sync(ratelimit.admit)(principal, tokens=5000)
    assert "x-ratelimit-limit-requests" not in admission.headers


@pytest.mark.django_db
def test_a_keys_own_limit_applies_beside_its_members(org_a, alice):
    _, key = services.api_key_create(organization=org_a, user=alice, rpm_limit=2, actor=None)
    principal = principal_for_key(key)
    _wait_for_fresh_window()
    async_to_sync(ratelimit.admit)(principal, tokens=1)
    async_to_sync(ratelimit.admit)(principal, tokens=1)
    with pytest.raises(ratelimit.RateLimited) as raised:
        async_to_sync(ratelimit.admit)(principal, tokens=1)
    assert "this key" in raised.value.message


def test_window_arithmetic_weights_the_previous_minute():
    # 60 requests at the very end of the last minute, 15 s into this one: 45 still count.
    assert ratelimit._retry_after(limit=50, cost=1, current=0, previous=60, elapsed=15) > 0
    assert ratelimit._retry_after(limit=50, cost=1, current=50, previous=0, elapsed=15) == (
        pytest.approx(45.01)
    )


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_limit_holds_across_two_proxy_processes_under_concurrency(org_a, bob, tmp_path):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: limits are per process in the embedded default")
    services.role_limit_set(
        organization=org_a, role="basic", rpm_limit=10, tpm_limit=None, actor=None
    )
    _, key = services.api_key_create(organization=org_a, user=bob, actor=None)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}", "x-synthlang-cache": "off"}
    with (
        live_server(log_path=tmp_path / "one.log") as first,
        live_server(log_path=tmp_path / "two.log") as second,
    ):
        _wait_for_fresh_window(margin=15)

        def call(index: int) -> int:
            base = first if index % 2 else second
            response = httpx.post(
                f"{base}/v1/chat/completions", json=body, headers=headers, timeout=30
            )
            return response.status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(call, range(30)))
    assert statuses.count(200) == 10
    assert statuses.count(429) == 20
