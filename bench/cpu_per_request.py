"""Server CPU per chat request, one worker, for several checkouts measured in turn.

    python bench/cpu_per_request.py CHECKOUT [CHECKOUT ...] [--requests 2000] [--rounds 3]
        [--concurrency 1] [--stream] [--env NAME=VALUE ...]
        [--calls | --instructions [--cache-sim] [--branch-sim] | --interleave [--burst 1]]

Each round starts every checkout's proxy in turn (``python -m synthlang_site --workers 1``
from that directory, its own migrations on a fresh SQLite database, Redis from
``REDIS_URL`` for accounting and limits) in front of one shared fake upstream, sends 300
warm-up requests, then ``--requests`` more, and reads the worker's user plus system CPU time
from /proc before and after, and the client's median time per request (the fake upstream's
included). Requests are identical and the response cache is off, so
every one goes upstream. CPU time per request, unlike latency under load, hardly moves
with what else the machine does: on a quiet 2-core machine three rounds of 2000 requests
spread by about 0.03 ms. Compare checkouts within one run; rounds alternate so that drift
spreads evenly. ``git worktree add --detach DIR COMMIT`` gives a checkout of an older
commit.

On a machine whose CPU time itself drifts (a shared virtual machine: rounds of the same code
spreading by 0.5 ms), ``--calls`` counts instead the Python function calls per request,
which do not depend on the machine: each checkout's server runs twice under cProfile, with
``--requests`` and with twice as many after the warm-up, and the difference in calls is
divided by ``--requests``. Profiling slows the server; only the counts are meaningful.
``--instructions`` counts instead the machine instructions per request under valgrind's
callgrind, the interpreter's own work and the C libraries' included: the nearest
repeatable stand-in for CPU time. Each checkout's server starts with counting off, takes
the warm-up, then ``--rounds`` windows of ``--requests`` requests, counting switched on
and off around each with ``callgrind_control``; ``--cache-sim`` also simulates the
processor's caches and reports their misses per request, ``--branch-sim`` its branch
predictor and the mispredicted branches (conditional, and indirect: the interpreter's
jump to each bytecode's code). Valgrind runs the server some fifty times slower, so a
hundred requests per window are enough, and work done on a timer runs fifty times as
often per request: the caches of keys, policies and tools (5 s by default) reload every
few requests (in checkouts older than SQLite's kept connections, each reload on a new
connection that parses the schema). For the steady-state work of a request, give those
caches and the usage flush long intervals with ``--env`` (the README lists the settings).

``--interleave`` runs every checkout's server at the same time instead, each with its
own SQLite database and Redis database (the one after ``REDIS_URL``'s for the second
checkout, and so on), and sends the requests to them in turn, one each, in ``--rounds``
blocks of ``--requests``: whatever slows the machine during a block slows every
checkout alike, so the ratio of their CPU times in one block holds where the rounds
above drift. Each block's ratio to the first checkout is printed. Here a checkout may
carry settings of its own, ``DIR@NAME=VALUE@...``, and one directory may come twice: the
same code twice is the measurement's own spread, and ``DIR@SYNTHLANG_STAGES=...`` beside
``DIR`` is what the stages left out cost. ``--burst N`` sends each server N requests in a
row per turn instead of one: with one, every request finds the processor's caches full of
the other servers' work (a cold start each time); with a few dozen, a server runs warm, as
one does under steady traffic, while a turn still lasts well under a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import pstats
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
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


@dataclass
class Figures:
    cpu_ms: float  # the worker's CPU time per request
    p50_ms: float  # the client's median time per request, upstream included


def measured_proxy(checkout: Path, upstream_url: str, env: dict, **options):
    """The one-worker proxy of ``checkout`` that every mode measures, the response cache
    off so that every request goes upstream; ``options`` go to ``synthlang_proxy``."""
    return synthlang_proxy(
        bench_workdir("cpu"),
        upstream_url=upstream_url,
        workers=1,
        setup=functools.partial(prepare_synthlang, cwd=checkout),
        base_env=env,
        root=checkout,
        ENABLE_CACHE="0",
        **options,
    )


async def timed_chat(session: aiohttp.ClientSession, proxy, body: dict, label) -> float:
    """One chat request to ``proxy``; the client's time for it in seconds."""
    started = time.perf_counter()
    async with session.post(
        f"{proxy.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {proxy.key}"},
    ) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{label}: status {response.status}")
    return time.perf_counter() - started


async def measure(
    checkout: Path,
    upstream_url: str,
    args,
    *,
    requests: int | None = None,
    profile_to: Path | None = None,
) -> Figures:
    """The worker's CPU time per request, and the client's median time per request, over
    ``requests`` (``--requests``) after the warm-up."""
    env = bench_environment(**dict(pair.split("=", 1) for pair in args.env))
    async with measured_proxy(checkout, upstream_url, env, profile_to=profile_to) as proxy:
        body = {"model": BENCH_MODEL, "messages": PROMPT, "stream": args.stream}
        async with aiohttp.ClientSession() as session:

            async def lane(count: int, latencies: list | None = None) -> None:
                for _ in range(count):
                    elapsed = await timed_chat(session, proxy, body, checkout)
                    if latencies is not None:
                        latencies.append(elapsed)

            await lane(WARM_UP)
            await asyncio.sleep(1)  # the warm-up's accounting, written after the answers
            before = cpu_seconds(proxy.process.pid)
            per_lane = (requests or args.requests) // args.concurrency
            latencies: list[float] = []
            await asyncio.gather(*(lane(per_lane, latencies) for _ in range(args.concurrency)))
            await asyncio.sleep(1)  # this run's accounting is part of its cost
            spent = cpu_seconds(proxy.process.pid) - before
        return Figures(
            cpu_ms=spent * 1000 / (per_lane * args.concurrency),
            p50_ms=statistics.median(latencies) * 1000,
        )


def profiled_calls(path: Path) -> int:
    return pstats.Stats(str(path)).total_calls


async def calls_per_request(checkout: Path, upstream_url: str, args) -> float:
    """Python calls per request: two profiled runs, N and 2N requests, differenced, so
    that the start and the warm-up cancel out."""
    counts = []
    with tempfile.TemporaryDirectory() as directory:
        for requests in (args.requests, 2 * args.requests):
            path = Path(directory) / f"count-{requests}.out"
            await measure(checkout, upstream_url, args, requests=requests, profile_to=path)
            counts.append(profiled_calls(path))
    return (counts[1] - counts[0]) / args.requests


def callgrind_control(proxy, *options: str) -> None:
    """``callgrind_control`` on the proxy's process. vgdb names its pipes after $HOST,
    which the proxy's environment sets to its listening address: the tool must see the
    same value to find them."""
    env = {**os.environ, "HOST": proxy.env["HOST"]}
    subprocess.run(
        ["callgrind_control", *options, str(proxy.process.pid)],
        env=env,
        check=True,
        capture_output=True,
    )


def callgrind_totals(path: Path) -> dict[str, int]:
    """The totals of one callgrind dump by event (``Ir``, and the cache misses when
    simulated), as ``callgrind_annotate`` sums them: a dump taken with counting toggled
    carries no usable summary line of its own."""
    report = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    events = totals = None
    for line in report.splitlines():
        if line.startswith("Events shown:"):
            events = line.split(":", 1)[1].split()
        elif "PROGRAM TOTALS" in line:
            totals = [int(field.replace(",", "")) for field in line.split() if field[0].isdigit()]
    if events is None or totals is None:
        raise ValueError(f"{path}: no totals in callgrind_annotate's report")
    return dict(zip(events, totals, strict=True))


async def next_dump(out: Path, number: int, timeout: float = 120) -> Path:
    """The ``number``-th dump of a callgrind run writing to ``out``, once written."""
    path = out.with_name(f"{out.name}.{number}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and "totals:" in path.read_text(errors="replace")[-4096:]:
            return path
        await asyncio.sleep(0.5)
    raise TimeoutError(path)


async def windowed_instructions(checkout: Path, upstream_url: str, args) -> list[dict]:
    """Events per request (``Ir``, and the cache misses with ``--cache-sim``) for each of
    ``--rounds`` windows of ``--requests`` requests, counted in one server after an
    uncounted warm-up."""
    env = bench_environment(**dict(pair.split("=", 1) for pair in args.env))
    options = (
        "--instr-atstart=no",
        *(("--cache-sim=yes",) if args.cache_sim else ()),
        *(("--branch-sim=yes",) if args.branch_sim else ()),
    )
    body = {"model": BENCH_MODEL, "messages": PROMPT, "stream": args.stream}
    windows = []
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        async with (
            measured_proxy(
                checkout, upstream_url, env, callgrind_to=out, callgrind_options=options
            ) as proxy,
            aiohttp.ClientSession() as session,
        ):
            for _ in range(WARM_UP):
                await timed_chat(session, proxy, body, checkout)
            await asyncio.sleep(1)
            for number in range(1, args.rounds + 1):
                callgrind_control(proxy, "--zero")
                callgrind_control(proxy, "--instr=on")
                for _ in range(args.requests):
                    await timed_chat(session, proxy, body, checkout)
                callgrind_control(proxy, "--instr=off")
                callgrind_control(proxy, f"--dump=window{number}")
                totals = callgrind_totals(await next_dump(out, number))
                windows.append({event: value / args.requests for event, value in totals.items()})
                print(f"{checkout} window {number}: {_describe(windows[-1])}", flush=True)
    return windows


def _describe(per_request: dict) -> str:
    """Instructions per request, with the cache simulated the first-level and last-level
    misses (instruction and data together), with the branch predictor the mispredictions."""
    text = f"{per_request['Ir']:,.0f} instructions"
    if "D1mr" in per_request:
        first = per_request["I1mr"] + per_request["D1mr"] + per_request["D1mw"]
        last = per_request["ILmr"] + per_request["DLmr"] + per_request["DLmw"]
        text += f", {first:,.0f} L1 misses, {last:,.0f} LL misses"
    if "Bcm" in per_request:
        text += (
            f", {per_request['Bcm']:,.0f} of {per_request['Bc']:,.0f} conditional and"
            f" {per_request['Bim']:,.0f} of {per_request['Bi']:,.0f} indirect branches mispredicted"
        )
    return text


async def alternate(args, measure_one, describe) -> dict[Path, list]:
    """``measure_one(checkout, upstream_url)`` for every checkout in turn, ``--rounds``
    times, in front of one fake upstream; each result printed as ``describe`` says."""
    checkouts = [Path(path).resolve() for path in args.checkouts]
    results: dict[Path, list] = {checkout: [] for checkout in checkouts}
    async with fake_upstream(bench_workdir("cpu-upstream")) as upstream_url:
        for round_number in range(1, args.rounds + 1):
            for checkout in checkouts:
                result = await measure_one(checkout, upstream_url)
                results[checkout].append(result)
                print(f"round {round_number} {checkout}: {describe(result)}", flush=True)
    return results


def redis_url_for(index: int, base: str) -> str:
    """``base`` with its database number moved on by ``index``: one database per server,
    so that one server's usage flush never takes another's events."""
    head, _, database = base.rpartition("/")
    if not database.isdigit():
        head, database = base.rstrip("/"), "0"
    return f"{head}/{int(database) + index}"


async def interleave(args) -> None:
    """Every checkout's server at once, the requests sent to them in turn, CPU time read
    for each after every block of ``--requests`` per checkout."""
    checkouts = [f"{index + 1}:{spec}" for index, spec in enumerate(args.checkouts)]
    base_redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    body = {"model": BENCH_MODEL, "messages": PROMPT, "stream": args.stream}
    blocks: dict[str, list[float]] = {checkout: [] for checkout in checkouts}
    p50s: dict[str, list[float]] = {checkout: [] for checkout in checkouts}
    async with contextlib.AsyncExitStack() as stack:
        upstream_url = await stack.enter_async_context(fake_upstream(bench_workdir("cpu-upstream")))
        proxies = []
        for index, spec in enumerate(args.checkouts):
            directory, *settings = spec.split("@")
            checkout = Path(directory).resolve()
            env = bench_environment(
                **dict(pair.split("=", 1) for pair in [*args.env, *settings]),
                REDIS_URL=redis_url_for(index, base_redis),
            )
            proxies.append(
                await stack.enter_async_context(measured_proxy(checkout, upstream_url, env))
            )
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def one_each(count: int) -> dict[str, list[float]]:
            """Client times (ms) per checkout, the fake upstream's included: ``count``
            requests each, ``--burst`` in a row per turn."""
            turns = list(zip(checkouts, proxies, strict=True))
            times: dict[str, list[float]] = {checkout: [] for checkout in checkouts}
            for step in range(count // args.burst):
                first = step % len(turns)  # who goes first moves on, so no one always follows
                for checkout, proxy in turns[first:] + turns[:first]:
                    for _ in range(args.burst):
                        elapsed = await timed_chat(session, proxy, body, checkout)
                        times[checkout].append(elapsed * 1000)
            return times

        await one_each(WARM_UP)
        await asyncio.sleep(1)
        for block in range(1, args.rounds + 1):
            before = [cpu_seconds(proxy.process.pid) for proxy in proxies]
            times = await one_each(args.requests)
            after = [cpu_seconds(proxy.process.pid) for proxy in proxies]
            sent = len(next(iter(times.values())))
            spent = [(b - a) * 1000 / sent for a, b in zip(before, after, strict=True)]
            for checkout, value in zip(checkouts, spent, strict=True):
                blocks[checkout].append(value)
                p50s[checkout].append(statistics.median(times[checkout]))
            ratios = " ".join(f"{value / spent[0]:.3f}" for value in spent[1:])
            figures = " / ".join(f"{value:.3f}" for value in spent)
            medians = " / ".join(f"{p50s[checkout][-1]:.3f}" for checkout in checkouts)
            print(
                f"block {block}: {figures} ms CPU, ratios to the first {ratios}; p50 {medians} ms",
                flush=True,
            )
    _print_interleaved(blocks, p50s)


def _ratios(values: list[float], first: list[float]) -> tuple[float, int]:
    """The median ratio of ``values`` to ``first``, block by block, and how many were lower."""
    pairs = list(zip(values, first, strict=True))
    return statistics.median(v / f for v, f in pairs), sum(v < f for v, f in pairs)


def _print_interleaved(blocks: dict[str, list[float]], p50s: dict[str, list[float]]) -> None:
    first_cpu, first_p50 = next(iter(blocks.values())), next(iter(p50s.values()))
    print(
        "\n| checkout | CPU ms per request (median of blocks) | ratio to the first "
        "| blocks below | p50 ms | ratio | blocks below |"
    )
    print("|---|---|---|---|---|---|---|")
    for checkout, values in blocks.items():
        cpu_ratio, cpu_below = _ratios(values, first_cpu)
        p50_ratio, p50_below = _ratios(p50s[checkout], first_p50)
        print(
            f"| {checkout} | {statistics.median(values):.3f} | {cpu_ratio:.3f} | {cpu_below} "
            f"| {statistics.median(p50s[checkout]):.3f} | {p50_ratio:.3f} | {p50_below} |"
        )


async def main(args) -> None:
    if args.interleave:
        await interleave(args)
        return
    if args.instructions:
        await instructions(args)
        return
    if args.calls:
        await count(args)
        return
    figures: dict[Path, list[Figures]] = await alternate(
        args,
        lambda checkout, upstream_url: measure(checkout, upstream_url, args),
        lambda figure: f"{figure.cpu_ms:.3f} ms CPU, p50 {figure.p50_ms:.3f} ms",
    )
    print(f"\n| checkout | CPU ms per request, {args.rounds} rounds | median | p50 ms, median |")
    print("|---|---|---|---|")
    for checkout, values in figures.items():
        cpu = [value.cpu_ms for value in values]
        p50 = statistics.median(value.p50_ms for value in values)
        rounds = " / ".join(f"{value:.3f}" for value in cpu)
        print(f"| {checkout.name} | {rounds} | {statistics.median(cpu):.3f} | {p50:.3f} |")


async def instructions(args) -> None:
    """Every checkout's windows in turn, in front of one fake upstream."""
    results = {}
    async with fake_upstream(bench_workdir("cpu-upstream")) as upstream_url:
        for directory in args.checkouts:
            checkout = Path(directory).resolve()
            results[checkout] = await windowed_instructions(checkout, upstream_url, args)
    print(f"\n| checkout | per request, {args.rounds} windows of {args.requests} requests |")
    print("|---|---|")
    for checkout, windows in results.items():
        print(f"| {checkout.name} | {' / '.join(_describe(window) for window in windows)} |")


async def count(args) -> None:
    """Python calls per request, checkouts alternating for ``--rounds`` rounds."""
    what = "Python calls"
    counts: dict[Path, list[float]] = await alternate(
        args,
        lambda checkout, upstream_url: calls_per_request(checkout, upstream_url, args),
        lambda value: f"{value:,.0f} {what}",
    )
    print(f"\n| checkout | {what} per request ({args.requests} requests), rounds | median |")
    print("|---|---|---|")
    for checkout, values in counts.items():
        rounds = " / ".join(f"{value:,.0f}" for value in values)
        print(f"| {checkout.name} | {rounds} | {statistics.median(values):,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", help="directories holding a checkout")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument(
        "--burst", type=int, default=1, help="--interleave: requests in a row per server's turn"
    )
    parser.add_argument("--env", nargs="*", default=[], help="NAME=VALUE for every server")
    counted = parser.add_mutually_exclusive_group()
    counted.add_argument("--calls", action="store_true", help="count Python calls per request")
    counted.add_argument(
        "--instructions", action="store_true", help="count machine instructions per request"
    )
    counted.add_argument(
        "--interleave", action="store_true", help="all servers at once, requests in turn"
    )
    parser.add_argument(
        "--cache-sim", action="store_true", help="--instructions: count cache misses too"
    )
    parser.add_argument(
        "--branch-sim", action="store_true", help="--instructions: count mispredicted branches"
    )
    asyncio.run(main(parser.parse_args()))
