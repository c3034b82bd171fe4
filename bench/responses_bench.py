"""Responses API benchmark: what each path adds over the upstream, beside chat completions.

    python bench/responses_bench.py [--requests 300] [--duration 5]

Starts the fake upstream and one SynthLang Proxy process (as ``proxy_bench.py`` does, the
cache off), then sends sequential requests in rounds that alternate between the upstream
directly (its chat and its Responses endpoints), ``/v1/chat/completions``, ``/v1/responses``
passed through (the default OpenAI provider) with ``store: false`` and ``store: true``
(one row written per answer), and ``/v1/responses`` translated to chat (a route whose
provider key says ``responses_api: false``), so every series sees the same moments of a
noisy machine. Added latency is each series' median minus the median of the upstream
endpoint it calls. Then the throughput of each with 64 connections. The same prompt
everywhere.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
from json_load import post_throughput, timed_post
from proxy_bench import BENCH_MODEL, PROMPT, percentile
from servers import bench_workdir, fake_upstream, manage_shell, prepare_synthlang, synthlang_proxy

RESPONSES_BODY = {
    "model": BENCH_MODEL,
    "instructions": PROMPT[0]["content"],
    "input": PROMPT[1]["content"],
}
CHAT_BODY = {"model": BENCH_MODEL, "messages": PROMPT}
TRANSLATED_MODEL = "bench-translated"


def translated_route(env: dict) -> None:
    """A route to the same upstream (the proxy's default provider) whose provider key says
    it has no Responses API."""
    script = (
        "from accounts import services; from accounts.models import Organization;"
        "from proxy.models import Deployment, ModelRoute;"
        "org = Organization.objects.get(slug='bench');"
        "ModelRoute.objects.filter(organization=org, public_name={!r}).delete();"
        "credential = services.provider_credential_set(organization=org, provider='openai',"
        " key='sk-bench-upstream', base_url={!r}, name='bench-translated',"
        " options={{'responses_api': False}}, actor=None);"
        "route = ModelRoute.objects.create(organization=org, public_name={!r});"
        "Deployment.objects.create(route=route, provider='openai', credential=credential,"
        " upstream_model={!r})"
    ).format(TRANSLATED_MODEL, env["OPENAI_BASE_URL"], TRANSLATED_MODEL, BENCH_MODEL)
    manage_shell(script, env)


def prepare_with_translated_route(env: dict) -> str:
    """The bench key, once the translated route exists."""
    key = prepare_synthlang(env)
    translated_route(env)
    return key


async def main_async(args) -> list[tuple[str, float, float, float]]:
    workdir = bench_workdir("responses")
    async with (
        fake_upstream(workdir) as upstream_url,
        synthlang_proxy(
            workdir,
            upstream_url=upstream_url,
            workers=1,
            setup=prepare_with_translated_route,
            ENABLE_CACHE="0",
            # The translated route's provider key names the local upstream over http.
            OUTBOUND_ALLOWED_HOSTS="127.0.0.1",
        ) as proxy,
    ):
        headers = {"Authorization": f"Bearer {proxy.key}", "x-synthlang-compression": "off"}
        proxy_url = f"{proxy.url}/v1"
        responses_url = f"{proxy_url}/responses"
        # name -> (url, body, headers, the upstream series it is measured against)
        series = {
            "upstream direct (chat)": (f"{upstream_url}/v1/chat/completions", CHAT_BODY, {}, ""),
            "upstream direct (responses)": (
                f"{upstream_url}/v1/responses",
                {**RESPONSES_BODY, "store": False},
                {},
                "",
            ),
            "/v1/chat/completions": (
                f"{proxy_url}/chat/completions",
                CHAT_BODY,
                headers,
                "upstream direct (chat)",
            ),
            "/v1/responses passed through, store: false": (
                responses_url,
                {**RESPONSES_BODY, "store": False},
                headers,
                "upstream direct (responses)",
            ),
            "/v1/responses passed through, store: true": (
                responses_url,
                {**RESPONSES_BODY, "store": True},
                headers,
                "upstream direct (responses)",
            ),
            "/v1/responses translated, store: false": (
                responses_url,
                {**RESPONSES_BODY, "model": TRANSLATED_MODEL, "store": False},
                headers,
                "upstream direct (chat)",
            ),
            "/v1/responses translated, store: true": (
                responses_url,
                {**RESPONSES_BODY, "model": TRANSLATED_MODEL, "store": True},
                headers,
                "upstream direct (chat)",
            ),
        }
        timings: dict[str, list[float]] = {name: [] for name in series}
        async with aiohttp.ClientSession() as session:
            for _ in range(30):  # warm-up
                for url, body, request_headers, _ in series.values():
                    await timed_post(session, url, body, request_headers)
            for _ in range(args.requests):
                for name, (url, body, request_headers, _) in series.items():
                    timings[name].append(await timed_post(session, url, body, request_headers))
        rows = []
        for name, (url, body, request_headers, baseline) in series.items():
            rps = await post_throughput(url, body, request_headers, args.duration, connections=64)
            p50 = percentile(timings[name], 0.5)
            added = p50 - percentile(timings[baseline], 0.5) if baseline else 0.0
            rows.append((name, p50, added, rps))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--duration", type=float, default=5.0)
    rows = asyncio.run(main_async(parser.parse_args()))
    print("| series | p50 ms | added p50 ms | req/s at 64 conn |")
    print("|---|---|---|---|")
    for name, p50, added, rps in rows:
        print(f"| {name} | {p50:.2f} | {added:.2f} | {rps:.0f} |")


if __name__ == "__main__":
    main()
