"""Fairness: one organization sending tens of megabytes at once does not stall another's
small requests. The bound is generous (a stall of seconds, not a latency target); the
figures are measured by bench/large_body_fairness.py and reported in the README."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from accounts import services
from common.testing import live_server
from proxy.models import Deployment, ModelRoute
from proxy.tests.conftest import UPSTREAM_KEY

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

# Varied prose (so no rule has nothing to do) of about 20 MB: under the platform's 50 MB
# limit, which the admin role has.
SENTENCES = [
    "Please could you review the attached quarterly figures and summarise the changes.",
    "The committee noted that revenue grew by 12 percent while costs remained flat.",
    "In order to reduce latency, the team moved the cache closer to the request path.",
    "It is important to note that the following   numbers are   preliminary estimates.",
]
LARGE_TEXT = "\n".join(SENTENCES * 66_000)
# Beyond this, a small request was stalled: today's proxy compresses each large body on the
# event loop, which held every other request for tens of seconds.
STALL_BOUND_SECONDS = 5.0


async def _small_requests(session, url: str, key: str, until: asyncio.Event) -> list[float]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
    headers = {"Authorization": f"Bearer {key}", "x-synthlang-cache": "off"}
    latencies: list[float] = []
    while not until.is_set() or len(latencies) < 10:
        started = time.perf_counter()
        async with session.post(url, json=body, headers=headers) as response:
            await response.read()
            assert response.status == 200, await response.text()
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.05)
    return latencies


async def _large_requests(session, url: str, key: str, count: int) -> list[int]:
    body = {"model": "bulk", "messages": [{"role": "user", "content": LARGE_TEXT}]}
    headers = {"Authorization": f"Bearer {key}", "x-synthlang-compression": "low"}
    statuses = []
    for _ in range(count):
        async with session.post(url, json=body, headers=headers) as response:
            await response.read()
            statuses.append(response.status)
    return statuses


async def _scenario(base_url: str, small_key: str, large_key: str) -> tuple[list, list]:
    url = f"{base_url}/v1/chat/completions"
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        done = asyncio.Event()
        probes = asyncio.create_task(_small_requests(session, url, small_key, done))
        await asyncio.sleep(0.3)  # the probes are running before the first large body lands
        senders = [_large_requests(session, url, large_key, count=1) for _ in range(3)]
        statuses = await asyncio.gather(*senders)
        done.set()
        return await probes, [status for batch in statuses for status in batch]


def _bulk_route(org, base_url: str) -> None:
    """The large bodies go to their own upstream process: the small requests must not wait
    behind them there, only (if at all) in the proxy."""
    credential = services.provider_credential_set(
        organization=org, provider="openai", key=UPSTREAM_KEY, base_url=base_url, actor=None
    )
    route = ModelRoute.objects.create(organization=org, public_name="bulk")
    Deployment.objects.create(
        route=route, provider="openai", credential=credential, upstream_model="gpt-4o-mini"
    )


def test_large_bodies_from_one_organization_do_not_stall_anothers_requests(
    fake_upstream, org_b, alice_key, charlie_key, tmp_path
):
    assert len(LARGE_TEXT) > 20_000_000
    _bulk_route(org_b, fake_upstream.v1)
    # The small requests are answered by the offline fake provider inside the proxy.
    env = {"OPENAI_API_KEY": "", "ENABLE_CACHE": "1", "ROUTE_CACHE_SECONDS": "0"}
    with live_server(env=env, log_path=tmp_path / "proxy.log") as base_url:
        latencies, statuses = asyncio.run(_scenario(base_url, alice_key, charlie_key))
    assert statuses == [200] * 3  # the large bodies themselves are served
    assert len(latencies) >= 10
    assert max(latencies) < STALL_BOUND_SECONDS, sorted(latencies)[-5:]
