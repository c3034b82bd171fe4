"""Latency of a semantic cache hit through the proxy beside a miss, in one run.

Starts `python -m proxy.fake_upstream` and a proxy process (`bench/servers.py`),
stores a few hundred questions in one organization's scope, then alternates two requests:
a reworded (misspelt) form of a stored question, which is a semantic hit (embed, search,
verify), and a question never asked, which is a miss (lookup, the fake upstream, the
store in the background). Alternating them gives both the same machine load, so their ratio
means something on a shared machine even when the absolute figures do not.

With several embedders (``--embedders static,minilm``) the proxy is started once per
embedder (CACHE_EMBEDDER), one after the other in the same run, and the embedding of one
question is timed in this process first.

    python bench/cache_hit_bench.py --requests 300 --embedders static,minilm
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
from servers import bench_workdir, fake_upstream, synthlang_proxy

TOPICS = ["invoice", "password", "account", "order", "refund", "plan", "address", "card"]


def embedding_latency(name: str) -> dict:
    """One question at a time, as on the hot path: p50 and p99 in ms, and the load time."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from proxy.semantic_cache.embedding import StaticEmbedder
    from proxy.semantic_cache.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder() if name == "minilm" else StaticEmbedder()
    started = time.perf_counter()
    embedder.warm_up()
    load_ms = (time.perf_counter() - started) * 1000
    samples = []
    for number in range(300):
        text = f"how do i update my {TOPICS[number % len(TOPICS)]} {number} on the website"
        started = time.perf_counter()
        embedder.embed([text])
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "embed_load_ms": round(load_ms),
        "embed_p50_ms": round(percentile(samples, 0.5), 3),
        "embed_p99_ms": round(percentile(samples, 0.99), 3),
    }


async def main_async(args, embedder: str) -> dict:
    workdir = bench_workdir("cache")
    # Consecutive ports from --port-base, or free ones.
    upstream_port = args.port_base or None
    proxy_port = args.port_base + 1 if args.port_base else None
    async with (
        fake_upstream(workdir, port=upstream_port) as upstream_url,
        synthlang_proxy(
            workdir,
            upstream_url=upstream_url,
            port=proxy_port,
            ENABLE_CACHE="1",
            CACHE_EMBEDDER=embedder,
            CACHE_MAX_ITEMS=str(max(args.entries * 2, 1000)),
        ) as proxy,
    ):
        url = f"{proxy.url}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {proxy.key}", "x-synthlang-compression": "off"}

        def payload(text: str) -> dict:
            return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}

        async with aiohttp.ClientSession() as client:
            for i in range(args.entries):
                topic = TOPICS[i % len(TOPICS)]
                await client.post(
                    url, headers=headers, json=payload(f"How do I update my {topic} {i}?")
                )
            await client.post(
                url, headers=headers, json=payload("How do I cancel my subscription?")
            )
            await asyncio.sleep(2.0)  # stores happen in the background
            reworded = payload("how do i cancle my subscripton")
            latencies: dict[str, list[float]] = {"hit": [], "miss": []}
            outcomes: dict[str, int] = {"hit": 0, "miss": 0}
            for number in range(args.requests):
                for kind, body in (
                    ("hit", reworded),
                    ("miss", payload(f"What colour is the {number}th fence on road {number}?")),
                ):
                    started = time.perf_counter()
                    async with client.post(url, headers=headers, json=body) as response:
                        await response.read()
                        outcomes[kind] += response.headers.get("x-synthlang-cache") == kind
                    latencies[kind].append((time.perf_counter() - started) * 1000)
        hit_p50 = percentile(latencies["hit"], 0.5)
        miss_p50 = percentile(latencies["miss"], 0.5)
        return {
            "embedder": embedder,
            "entries": args.entries + 1,
            "requests_each": args.requests,
            "semantic_hits": outcomes["hit"],
            "misses": outcomes["miss"],
            "hit_p50_ms": round(hit_p50, 2),
            "hit_p99_ms": round(percentile(latencies["hit"], 0.99), 2),
            "miss_p50_ms": round(miss_p50, 2),
            "miss_p99_ms": round(percentile(latencies["miss"], 0.99), 2),
            "hit_over_miss_p50": round(hit_p50 / miss_p50, 3),
            "load_average": round(os.getloadavg()[0], 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--entries", type=int, default=300)
    parser.add_argument("--embedders", default="static", help="comma-separated: static,minilm")
    parser.add_argument(
        "--port-base",
        type=int,
        default=0,
        help="fake upstream on this port, the proxy on the next (default: any free ports)",
    )
    args = parser.parse_args()
    for embedder in args.embedders.split(","):
        print({**asyncio.run(main_async(args, embedder)), **embedding_latency(embedder)})


if __name__ == "__main__":
    main()
