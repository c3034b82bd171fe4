"""Anthropic's Messages API through the proxy against chat completions through the same one.

    python bench/messages_bench.py [--requests 300] [--duration 10] [--port 7611]

Starts the fake upstream and one SynthLang Proxy worker (``servers.py``: a
production-mode proxy with authentication, rate limits and usage accounting, the fake
upstream as its default provider), then measures, with sequential requests that
alternate between the three so that each sees the same moments of a noisy machine:

- the upstream's chat completions directly,
- ``/v1/chat/completions`` through the proxy,
- ``/v1/messages`` through the proxy (translated to chat completions, and back),

and the throughput of the two proxy endpoints with 32 connections. The added latency of
an endpoint is its median minus the direct median; the Messages figure minus the chat one
is what the translation costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from json_load import post_throughput, timed_post  # the sibling scripts, through sys.path
from proxy_bench import BENCH_MODEL, PROMPT, percentile
from servers import bench_workdir, fake_upstream, synthlang_proxy

SYSTEM, USER = PROMPT[0]["content"], PROMPT[1]["content"]
CHAT_BODY = {"model": BENCH_MODEL, "messages": PROMPT}
MESSAGES_BODY = {
    "model": BENCH_MODEL,
    "max_tokens": 256,
    "system": SYSTEM,
    "messages": [{"role": "user", "content": USER}],
}


async def main_async(args) -> dict:
    workdir = bench_workdir("messages")
    async with (
        fake_upstream(workdir, port=args.port - 1) as upstream_url,
        synthlang_proxy(
            workdir,
            upstream_url=upstream_url,
            port=args.port,
            log_name="p.log",
            USE_SYNTHLANG="0",
            ENABLE_CACHE="0",
        ) as proxy,
    ):
        headers = {"Authorization": f"Bearer {proxy.key}", "x-synthlang-cache": "off"}
        series: dict[str, list[float]] = {"direct": [], "chat": [], "messages": []}
        targets = {
            "direct": (f"{upstream_url}/v1/chat/completions", CHAT_BODY, {}),
            "chat": (f"{proxy.url}/v1/chat/completions", CHAT_BODY, headers),
            "messages": (f"{proxy.url}/v1/messages", MESSAGES_BODY, headers),
        }
        async with aiohttp.ClientSession() as session:
            for _ in range(50):  # warm-up
                for url, body, extra in targets.values():
                    await timed_post(session, url, body, extra)
            for _ in range(args.requests):
                for name, (url, body, extra) in targets.items():
                    series[name].append(await timed_post(session, url, body, extra))
        direct_p50, direct_p99 = (
            percentile(series["direct"], 0.5),
            percentile(series["direct"], 0.99),
        )
        result = {"requests_each": args.requests}
        for name in ("chat", "messages"):
            result[f"{name}_added_p50_ms"] = round(percentile(series[name], 0.5) - direct_p50, 2)
            result[f"{name}_added_p99_ms"] = round(percentile(series[name], 0.99) - direct_p99, 2)
        for name in ("chat", "messages"):
            url, body, extra = targets[name]
            result[f"{name}_rps"] = round(
                await post_throughput(url, body, extra, args.duration, connections=32), 1
            )
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=7611, help="the proxy's; upstream one below")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
