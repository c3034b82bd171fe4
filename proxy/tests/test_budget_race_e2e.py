"""A budget holds across two proxy processes: concurrent requests against a nearly
exhausted budget overspend by at most one request's estimate."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx2 as httpx
import pytest

from billing import services as billing_services
from billing.models import Price, UsageEvent
from billing.usage import usage_flush_run
from common.testing import live_server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def test_budget_holds_across_two_proxy_processes(org_a, alice_key, tmp_path):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: budgets are per process in the embedded default")
    # Priced here, not by the seeded list prices: a transactional test's database starts
    # empty after an earlier test's flush. With max_tokens=200 a request reserves about
    # 2,000 micro-dollars and really costs about a tenth of that, so reservations decide
    # who gets through.
    Price.objects.create(
        model_pattern="gpt-4o",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=2_500_000,
        output_per_mtok_micros=10_000_000,
    )
    limit = 10_000
    billing_services.budget_set(organization=org_a, monthly_limit_micros=limit, actor=None)
    body = {
        "model": "gpt-4o",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Describe the sea in a few words."}],
    }
    headers = {"Authorization": f"Bearer {alice_key}", "x-synthlang-cache": "off"}
    with (
        live_server(log_path=tmp_path / "one.log") as first,
        live_server(log_path=tmp_path / "two.log") as second,
    ):

        def call(index: int) -> tuple[int, dict]:
            base = first if index % 2 else second
            response = httpx.post(
                f"{base}/v1/chat/completions", json=body, headers=headers, timeout=30
            )
            return response.status_code, response.json()

        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(call, range(60)))
    statuses = [status for status, _ in results]
    refused = [body for status, body in results if status == 429]
    assert statuses.count(200) >= 1
    assert refused, "the budget never refused a request"
    assert all(body["error"]["code"] == "insufficient_quota" for body in refused)

    deadline = time.monotonic() + 20
    events = []
    while time.monotonic() < deadline:
        usage_flush_run()
        events = list(UsageEvent.objects.filter(organization=org_a, status_code=200))
        if len(events) == statuses.count(200):
            break
        time.sleep(0.3)
    assert len(events) == statuses.count(200)
    spent = sum(event.cost_micros for event in events)
    largest_estimate = 2_100  # 200 completion tokens at $10/Mtok plus the short prompt
    assert spent <= limit + largest_estimate
