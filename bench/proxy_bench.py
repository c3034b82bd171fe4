"""Proxy benchmark: added latency, throughput, concurrent streams and memory.

    python bench/proxy_bench.py [--litellm PATH_TO_LITELLM_BINARY] [--duration 10]
        [--workers 1 2] [--litellm-workers 1 2] [--access-log off on off on]
        [--tracing off on off on]

Starts a local fake upstream (proxy.fake_upstream), SynthLang Proxy (``python -m
synthlang_site`` with each ``--workers`` count in turn) with authentication, rate limits
and usage accounting on, and optionally LiteLLM's proxy (with each ``--litellm-workers``
count) pointed at the same upstream, then drives each with an aiohttp load generator from
this process; ``--access-log`` runs each server with its JSON access line on and off (in the
order given, repeats allowed), written to a file as a server's stdout would be;
``--tracing`` likewise with OpenTelemetry spans exported over OTLP/HTTP to a local receiver
(``proxy.tests.otlp_receiver``, a process that decodes every export). Added
latency is measured with sequential requests that alternate between
the upstream directly and through the proxy. Set REDIS_URL to account usage and count rate
limits in Redis as production does (several workers need it); DATABASE_URL to use
PostgreSQL. Everything runs on this machine, so compare the ratios of one run rather than
absolute figures. The CPU split shows how the load spread over the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from servers import (
    ROOT,
    bench_environment,
    bench_workdir,
    fake_upstream,
    free_port,
    start,
    stop,
    synthlang_proxy,
    wait_http,
)

BENCH_MODEL = "gpt-4o-mini"
PROMPT = [
    {"role": "system", "content": "You are a concise assistant for a logistics company."},
    {"role": "user", "content": "Summarise in two sentences why shipment 4471 to Oslo was late."},
]


def rss_mb(pid: int) -> float:
    total = 0
    for child in [pid, *children_of(pid)]:
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    kids = [int(p) for p in text.split()]
    return kids + [g for k in kids for g in children_of(k)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_request(session: aiohttp.ClientSession, url: str, headers: dict) -> float:
    """Milliseconds for one chat completion with the bench's prompt, body read."""
    body = {"model": BENCH_MODEL, "messages": PROMPT}
    started = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as response:
        await response.read()
        assert response.status == 200, await response.text()
    return (time.perf_counter() - started) * 1000


async def sequential_latency(url: str, headers: dict, count: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        return [await timed_request(session, url, headers) for _ in range(count)]


async def paired_latency(
    url: str, headers: dict, direct_url: str, count: int
) -> tuple[list[float], list[float]]:
    """Sequential requests alternating between the upstream directly and through ``url``,
    so that both series see the same moments of a noisy machine."""
    through, direct = [], []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            direct.append(await timed_request(session, direct_url, {}))
            through.append(await timed_request(session, url, headers))
    return through, direct


async def throughput(url: str, headers: dict, connections: int, seconds: float) -> dict:
    body = {"model": BENCH_MODEL, "messages": PROMPT}
    done = errors = 0
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker():
            nonlocal done, errors
            while time.monotonic() < stop_at:
                async with session.post(url, json=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        done += 1
                    else:
                        errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    return {"rps": done / elapsed, "errors": errors}


async def concurrent_streams(url: str, headers: dict, streams: int) -> dict:
    body = {"model": BENCH_MODEL, "messages": PROMPT, "stream": True}
    ok = failed = 0
    connector = aiohttp.TCPConnector(limit=streams)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one():
            nonlocal ok, failed
            try:
                async with session.post(url, json=body, headers=headers) as response:
                    payload = await response.read()
                    if response.status == 200 and payload.rstrip().endswith(b"[DONE]"):
                        ok += 1
                    else:
                        failed += 1
            except aiohttp.ClientError:
                failed += 1

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(streams)))
        elapsed = time.monotonic() - started
    return {"ok": ok, "failed": failed, "seconds": elapsed}


async def measure(name: str, url: str, headers: dict, pid: int, args, direct_url: str) -> dict:
    await sequential_latency(url, headers, 50)  # warm-up
    latencies, direct = await paired_latency(url, headers, direct_url, args.requests)
    result = {
        "name": name,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "added_p50_ms": percentile(latencies, 0.5) - percentile(direct, 0.5),
        "added_p99_ms": percentile(latencies, 0.99) - percentile(direct, 0.99),
    }
    # How the load spread over the worker processes: each one's share of their CPU time.
    # And how many cores the server used: whether more workers had cores to run on.
    processes = [pid, *children_of(pid)]
    workers = [child for child in children_of(pid) if child in _direct_children(pid)]
    before = {process: cpu_seconds(process) for process in processes}
    started = time.monotonic()
    result.update(await throughput(url, headers, 64, args.duration))
    elapsed = time.monotonic() - started
    spent = {process: cpu_seconds(process) - before[process] for process in processes}
    result["cores"] = sum(spent.values()) / elapsed
    shares = [spent[child] for child in workers if name.startswith("synthlang")]
    if len(shares) > 1 and sum(shares):
        split = sorted((100 * share / sum(shares) for share in shares), reverse=True)
        result["cpu_split"] = "/".join(f"{share:.0f}" for share in split)
    streams = await concurrent_streams(url, headers, args.streams)
    result["streams_ok"], result["streams_failed"] = streams["ok"], streams["failed"]
    result["streams_seconds"] = streams["seconds"]
    result["rss_mb"] = rss_mb(pid)
    return result


async def spans_received(receiver_url: str) -> int:
    if not receiver_url:
        return 0
    async with aiohttp.ClientSession() as session, session.get(receiver_url) as response:
        return int(await response.text())


def _direct_children(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except FileNotFoundError:
        return set()


async def main_async(args) -> list[dict]:
    workdir = bench_workdir("proxy")
    base_env = bench_environment()
    processes: list[subprocess.Popen] = []  # the OTLP receiver and LiteLLM
    results = []
    try:
        async with fake_upstream(workdir, env=base_env) as upstream_url:
            direct_url = f"{upstream_url}/v1/chat/completions"
            direct = await sequential_latency(direct_url, {}, args.requests)
            results.append(
                {
                    "name": "upstream direct",
                    "p50_ms": percentile(direct, 0.5),
                    "p99_ms": percentile(direct, 0.99),
                    **await throughput(direct_url, {}, 64, args.duration),
                }
            )

            receiver_url = ""
            if "on" in args.tracing:
                receiver_port = free_port()
                receiver_url = f"http://127.0.0.1:{receiver_port}"
                receiver = start(
                    [
                        sys.executable,
                        "-m",
                        "proxy.tests.otlp_receiver",
                        "--port",
                        str(receiver_port),
                    ],
                    base_env,
                    workdir / "otlp.log",
                )
                processes.append(receiver)
                await wait_http(receiver_url)
            runs = [
                (workers, access, tracing)
                for workers in args.workers
                for access in args.access_log
                for tracing in args.tracing
            ]
            for number, (workers, access, tracing) in enumerate(runs):
                tracing_env = (
                    {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url} if tracing == "on" else {}
                )
                # Without tracing, not even an endpoint the shell may have set.
                run_env = {
                    name: value
                    for name, value in base_env.items()
                    if tracing == "on" or name != "OTEL_EXPORTER_OTLP_ENDPOINT"
                }
                spans_before = await spans_received(receiver_url)
                label = "worker" if workers == 1 else "workers"
                access_label = f", access log {access}" if len(set(args.access_log)) > 1 else ""
                if len(set(args.tracing)) > 1:
                    access_label += f", tracing {tracing}"
                # Stopped gracefully on leaving the block: the exporter flushes what it queued.
                async with synthlang_proxy(
                    workdir,
                    upstream_url=upstream_url,
                    workers=workers,
                    base_env=run_env,
                    log_name=f"proxy-{workers}-{number}.log",
                    ENABLE_CACHE="0",
                    ACCESS_LOG="true" if access == "on" else "false",
                    **tracing_env,
                ) as proxy:
                    headers = {"Authorization": f"Bearer {proxy.key}"}
                    for level in args.levels:
                        results.append(
                            await measure(
                                f"synthlang, {workers} {label} (compression {level}{access_label})",
                                f"{proxy.url}/v1/chat/completions",
                                {**headers, "x-synthlang-compression": level},
                                proxy.process.pid,
                                args,
                                direct_url,
                            )
                        )
                if tracing == "on":
                    # Proof the spans were made and exported, not just configured.
                    spans = await spans_received(receiver_url) - spans_before
                    results[-1]["name"] += f" [{spans} spans received]"

            for litellm_workers in args.litellm_workers if args.litellm else []:
                results.append(
                    await measure_litellm(workdir, upstream_url, args, litellm_workers, processes)
                )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    results[0]["added_p50_ms"] = results[0]["added_p99_ms"] = 0.0
    return results


async def measure_litellm(
    workdir: Path, upstream_url: str, args, litellm_workers: int, processes: list
) -> dict:
    """LiteLLM's proxy with ``litellm_workers`` workers, in front of the same upstream."""
    litellm_port = free_port()
    config = workdir / "litellm.yaml"
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": BENCH_MODEL,
                        "litellm_params": {
                            "model": f"openai/{BENCH_MODEL}",
                            "api_base": f"{upstream_url}/v1",
                            "api_key": "sk-bench-upstream",
                        },
                    }
                ],
                "general_settings": {"master_key": "sk-litellm-bench"},
                "litellm_settings": {"telemetry": False},
            }
        )
    )
    litellm = start(
        [
            args.litellm,
            "--config",
            str(config),
            "--port",
            str(litellm_port),
            "--num_workers",
            str(litellm_workers),
        ],
        bench_environment(LITELLM_TELEMETRY="False"),
        workdir / f"litellm-{litellm_workers}.log",
    )
    processes.append(litellm)
    await wait_http(f"http://127.0.0.1:{litellm_port}/health/liveliness", timeout=180)
    result = await measure(
        f"litellm proxy, {litellm_workers} worker(s)",
        f"http://127.0.0.1:{litellm_port}/v1/chat/completions",
        {"Authorization": "Bearer sk-litellm-bench"},
        litellm.pid,
        args,
        f"{upstream_url}/v1/chat/completions",
    )
    stop(litellm)
    return result


def render(results: list[dict], args) -> str:
    lines = [
        f"{args.requests} sequential requests for latency, 64 connections "
        f"for {args.duration:.0f} s, {args.streams} concurrent streams; {os.cpu_count()} cores "
        "shared by the load generator, the servers and the upstream.",
        "",
        "| server | added p50 ms | added p99 ms | req/s at 64 conn | cores used | CPU split % "
        f"| {args.streams} streams ok/failed | streams s | RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r.get('added_p50_ms', 0):.2f} | {r.get('added_p99_ms', 0):.2f} "
            f"| {r['rps']:.0f} | {r.get('cores', 0):.2f} | {r.get('cpu_split', '-')} "
            f"| {r.get('streams_ok', '-')}/{r.get('streams_failed', '-')} "
            f"| {r.get('streams_seconds', 0):.1f} | {r.get('rss_mb', 0):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--litellm", help="path to the litellm executable of another venv")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--levels", nargs="+", default=["off", "medium"])
    parser.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=[1],
        help="SynthLang server processes, one run per count (above 1 needs REDIS_URL)",
    )
    parser.add_argument("--litellm-workers", nargs="+", type=int, default=[1])
    parser.add_argument(
        "--access-log",
        nargs="+",
        choices=["on", "off"],
        default=["on"],
        help="run each server with its access line on and/or off, in this order",
    )
    parser.add_argument(
        "--tracing",
        nargs="+",
        choices=["on", "off"],
        default=["off"],
        help="run each server with OpenTelemetry tracing on and/or off, in this order",
    )
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    table = render(results, args)
    print(table)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "proxy.md").write_text(table + "\n")
    print("median of direct upstream p50 ms:", statistics.median([results[0]["p50_ms"]]))


if __name__ == "__main__":
    main()
