"""Server CPU per chat request, one worker, for several checkouts measured in turn.

    python bench/cpu_per_request.py CHECKOUT [CHECKOUT ...] [--requests 2000] [--rounds 3]
        [--concurrency 1] [--stream] [--env NAME=VALUE ...]

Each round starts every checkout's proxy in turn (``python -m synthlang_site --workers 1``
from that directory, its own migrations on a fresh SQLite database, Redis from
``REDIS_URL`` for accounting and limits) in front of one shared fake upstream, sends 300
warm-up requests, then ``--requests`` more, and reads the worker's user plus system CPU time
from /proc before and after. Requests are identical and the response cache is off, so
every one goes upstream. CPU time per request, unlike latency under load, hardly moves
with what else the machine does: on a quiet 2-core machine three rounds of 2000 requests
spread by about 0.03 ms. Compare checkouts within one run; rounds alternate so that drift
spreads evenly. ``git worktree add --detach DIR COMMIT`` gives a checkout of an older
commit.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
from pathlib import Path

import aiohttp
from proxy_bench import BENCH_MODEL, PROMPT, cpu_seconds
from servers import (
    bench_environment,
    bench_workdir,
    fake_upstream,
    prepare_synthlang,
    synthlang_proxy,
)

WARM_UP = 300


async def cpu_ms_per_request(checkout: Path, upstream_url: str, args) -> float:
    env = bench_environment(**dict(pair.split("=", 1) for pair in args.env))
    async with synthlang_proxy(
        bench_workdir("cpu"),
        upstream_url=upstream_url,
        workers=1,
        setup=functools.partial(prepare_synthlang, cwd=checkout),
        base_env=env,
        root=checkout,
        ENABLE_CACHE="0",
    ) as proxy:
        headers = {"Authorization": f"Bearer {proxy.key}"}
        body = {"model": BENCH_MODEL, "messages": PROMPT, "stream": args.stream}
        async with aiohttp.ClientSession() as session:

            async def lane(count: int) -> None:
                for _ in range(count):
                    async with session.post(
                        f"{proxy.url}/v1/chat/completions", json=body, headers=headers
                    ) as response:
                        await response.read()
                        if response.status != 200:
                            raise RuntimeError(f"{checkout}: status {response.status}")

            await lane(WARM_UP)
            await asyncio.sleep(1)  # the warm-up's accounting, written after the answers
            before = cpu_seconds(proxy.process.pid)
            per_lane = args.requests // args.concurrency
            await asyncio.gather(*(lane(per_lane) for _ in range(args.concurrency)))
            await asyncio.sleep(1)  # this run's accounting is part of its cost
            spent = cpu_seconds(proxy.process.pid) - before
        return spent * 1000 / (per_lane * args.concurrency)


async def main(args) -> None:
    checkouts = [Path(path).resolve() for path in args.checkouts]
    figures: dict[Path, list[float]] = {checkout: [] for checkout in checkouts}
    async with fake_upstream(bench_workdir("cpu-upstream")) as upstream_url:
        for round_number in range(1, args.rounds + 1):
            for checkout in checkouts:
                figure = await cpu_ms_per_request(checkout, upstream_url, args)
                figures[checkout].append(figure)
                print(f"round {round_number} {checkout}: {figure:.3f} ms", flush=True)
    print(f"\n| checkout | CPU ms per request, {args.rounds} rounds | median |")
    print("|---|---|---|")
    for checkout, values in figures.items():
        rounds = " / ".join(f"{value:.3f}" for value in values)
        print(f"| {checkout.name} | {rounds} | {statistics.median(values):.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", help="directories holding a checkout")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--env", nargs="*", default=[], help="NAME=VALUE for every server")
    asyncio.run(main(parser.parse_args()))
