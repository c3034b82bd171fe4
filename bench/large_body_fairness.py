"""Fairness under large bodies: one organization's small requests, alone and while another
organization sends tens of megabytes at once.

    python bench/large_body_fairness.py [--requests 200] [--senders 3] [--mb 20]
        [--root PATH_OF_ANOTHER_CHECKOUT]

Starts a fake upstream (``proxy.fake_upstream``) for the large bodies and a production-mode
proxy whose small requests are answered by the offline fake provider inside it, so that the
small requests can only wait in the proxy, never behind the large ones at the upstream.
Measures the small requests' latency alone, then while ``--senders`` clients each send
large bodies one after another until the small requests are done. ``--root`` runs the
proxy of another checkout (an earlier commit) with the same load and upstream, for a
before/after.
Set DATABASE_URL and REDIS_URL as production does; everything runs on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_bench import percentile
from servers import (
    ROOT,
    bench_environment,
    bench_workdir,
    fake_upstream,
    manage_shell,
    migrate,
    synthlang_proxy,
)

UPSTREAM_KEY = "sk-bench-upstream"
SENTENCES = [
    "Please could you review the attached quarterly figures and summarise the changes.",
    "The committee noted that revenue grew by 12 percent while costs remained flat.",
    "In order to reduce latency, the team moved the cache closer to the request path.",
    "It is important to note that the following   numbers are   preliminary estimates.",
]
SMALL = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}


def prepare(env: dict, cwd: Path, upstream_url: str) -> tuple[str, str]:
    """Two organizations: one key for small requests, an admin key whose "bulk" model goes
    to the fake upstream."""
    migrate(env, cwd=cwd)
    script = (
        "from accounts import services; from accounts.models import Organization;"
        "from proxy.models import Deployment, ModelRoute;"
        "small = Organization.objects.filter(slug='fair-small').first() or "
        "services.organization_create(name='Small', slug='fair-small');"
        "bulk = Organization.objects.filter(slug='fair-bulk').first() or "
        "services.organization_create(name='Bulk', slug='fair-bulk');"
        "u1, _ = services.user_get_or_create(username='fair-small');"
        "u2, _ = services.user_get_or_create(username='fair-bulk');"
        "services.membership_set(organization=small, user=u1, role='premium', actor=None);"
        "services.membership_set(organization=bulk, user=u2, role='admin', actor=None);"
        "services.role_limit_set(organization=small, role='premium', rpm_limit=10_000_000,"
        " tpm_limit=1_000_000_000, actor=None);"
        f"c = services.provider_credential_set(organization=bulk, provider='openai',"
        f" key='{UPSTREAM_KEY}', base_url='{upstream_url}/v1', actor=None);"
        "ModelRoute.objects.filter(organization=bulk, public_name='bulk').delete();"
        "r = ModelRoute.objects.create(organization=bulk, public_name='bulk');"
        "Deployment.objects.create(route=r, provider='openai', credential=c,"
        " upstream_model='gpt-4o-mini');"
        "print(services.api_key_create(organization=small, user=u1, actor=None)[1]);"
        "print(services.api_key_create(organization=bulk, user=u2, actor=None)[1])"
    )
    small_key, bulk_key = manage_shell(script, env, cwd=cwd)[-2:]
    return small_key, bulk_key


async def small_latencies(session, url: str, key: str, count: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}", "x-synthlang-cache": "off"}
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        async with session.post(url, json=SMALL, headers=headers) as response:
            await response.read()
            assert response.status == 200, await response.text()
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    return latencies


async def large_sender(session, url: str, key: str, body: bytes, stop_event) -> list[int]:
    headers = {
        "Authorization": f"Bearer {key}",
        "x-synthlang-compression": "low",
        "Content-Type": "application/json",
    }
    statuses = []
    while not stop_event.is_set():
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            statuses.append(response.status)
    return statuses


async def run(args) -> list[dict]:
    import json

    root = Path(args.root).resolve() if args.root else ROOT
    workdir = bench_workdir("fairness")
    base_env = bench_environment(PYTHONPATH=str(root))
    # The upstream is always this checkout's, so both servers meet the same upstream.
    upstream_env = bench_environment(PYTHONPATH=str(ROOT))
    text = "\n".join(SENTENCES * int(args.mb * 1_000_000 / 330))
    large = json.dumps({"model": "bulk", "messages": [{"role": "user", "content": text}]})
    async with (
        fake_upstream(workdir, env=upstream_env) as upstream_url,
        synthlang_proxy(
            workdir,
            upstream_url=upstream_url,
            setup=lambda env: prepare(env, root, upstream_url),
            base_env=base_env,
            root=root,
            OPENAI_API_KEY="",  # the small requests: the offline fake provider
            OUTBOUND_ALLOWED_HOSTS="127.0.0.1",
            ROUTE_CACHE_SECONDS="0",
        ) as proxy,
    ):
        small_key, bulk_key = proxy.key
        url = f"{proxy.url}/v1/chat/completions"
        results = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            await small_latencies(session, url, small_key, 20)  # warm-up
            alone = await small_latencies(session, url, small_key, args.requests)
            results.append({"name": "alone", "latencies": alone, "large": []})
            stop_event = asyncio.Event()
            senders = [
                asyncio.create_task(
                    large_sender(session, url, bulk_key, large.encode(), stop_event)
                )
                for _ in range(args.senders)
            ]
            await asyncio.sleep(0.5)
            loaded = await small_latencies(session, url, small_key, args.requests)
            stop_event.set()
            statuses = [s for batch in await asyncio.gather(*senders) for s in batch]
            results.append({"name": "large senders", "latencies": loaded, "large": statuses})
        return results


def render(results: list[dict], args) -> str:
    lines = [
        f"{args.requests} small requests, {args.senders} senders of {args.mb:g} MB bodies; "
        f"{os.cpu_count()} cores shared by the load generator, the proxy and the upstream.",
        "",
        "| small requests | p50 ms | p99 ms | max ms | large bodies answered (status: count) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        counts = {status: r["large"].count(status) for status in sorted(set(r["large"]))}
        answered = ", ".join(f"{s}: {n}" for s, n in counts.items()) or "-"
        lines.append(
            f"| {r['name']} | {percentile(r['latencies'], 0.5):.1f} "
            f"| {percentile(r['latencies'], 0.99):.1f} | {max(r['latencies']):.1f} "
            f"| {answered} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--senders", type=int, default=3)
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--root", help="another checkout whose server to measure")
    args = parser.parse_args()
    table = render(asyncio.run(run(args)), args)
    print(table)


if __name__ == "__main__":
    main()
