"""Latency of a semantic cache hit through the proxy (p50/p99), against the fake upstream.

Starts `python -m proxy.fake_upstream` and a proxy process as `bench/proxy_bench.py` does,
stores a few hundred questions in one organization's scope, then asks a reworded (misspelt)
form of one of them many times: every request is a semantic hit (embed, search, verify).

    python bench/cache_hit_bench.py --requests 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_bench import (
    free_port,
    percentile,
    prepare_synthlang,
    proxy_environment,
    start,
    wait_http,
)

TOPICS = ["invoice", "password", "account", "order", "refund", "plan", "address", "card"]


async def main_async(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="synthlang-cache-bench-"))
    upstream_port, proxy_port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = []
    try:
        processes.append(
            start(
                [sys.executable, "-m", "proxy.fake_upstream", "--port", str(upstream_port)],
                base_env,
                workdir / "upstream.log",
            )
        )
        await wait_http(f"{upstream_url}/_stats")
        env = proxy_environment(
            base_env,
            workdir=workdir,
            proxy_port=proxy_port,
            upstream_url=upstream_url,
            ENABLE_CACHE="1",
            CACHE_MAX_ITEMS=str(max(args.entries * 2, 1000)),
        )
        key = prepare_synthlang(env)
        proxy = start([sys.executable, "-m", "synthlang_site"], env, workdir / "proxy.log")
        processes.append(proxy)
        await wait_http(f"http://127.0.0.1:{proxy_port}/health")
        url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {key}", "x-synthlang-compression": "off"}

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
            latencies, hits = [], 0
            for _ in range(args.requests):
                started = time.perf_counter()
                async with client.post(url, headers=headers, json=reworded) as response:
                    await response.read()
                    hits += response.headers.get("x-synthlang-cache") == "hit"
                latencies.append((time.perf_counter() - started) * 1000)
        return {
            "entries": args.entries + 1,
            "requests": args.requests,
            "hits": hits,
            "p50_ms": round(percentile(latencies, 0.5), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
        }
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--entries", type=int, default=300)
    args = parser.parse_args()
    print(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
