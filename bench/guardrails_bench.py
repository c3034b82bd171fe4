"""Guardrails benchmark: the latency PII masking adds, beside masking off, in one run.

    python bench/guardrails_bench.py [--requests 200]

Starts the fake upstream and one SynthLang Proxy process (``servers.py``, the
cache and compression off), then sends sequential chat completions in rounds that
alternate between the upstream directly, the proxy with PII off, the proxy with
``x-synthlang-pii: mask`` on a prompt without personal data (the scan alone) and on one
with an e-mail, a card, a phone number and an IBAN (scan, mask and restore). Added
latency is each series' median minus the direct median. Then, in this process, the time
``mask_body`` takes on prompts of growing size (no network: the recognizers' own cost).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
from json_load import timed_post
from proxy_bench import BENCH_MODEL, PROMPT, percentile
from servers import bench_workdir, fake_upstream, synthlang_proxy

PII_TEXT = (
    "Please email jane.doe@example.com and call +44 20 7946 0958 about card "
    "4111 1111 1111 1111 and the refund to GB82 WEST 1234 5698 7654 32."
)
CLEAN_BODY = {"model": BENCH_MODEL, "messages": PROMPT}
PII_BODY = {
    "model": BENCH_MODEL,
    "messages": [PROMPT[0], {"role": "user", "content": PROMPT[1]["content"] + " " + PII_TEXT}],
}


async def main_async(args) -> list[tuple[str, float, float]]:
    workdir = bench_workdir("guardrails")
    async with (
        fake_upstream(workdir) as upstream_url,
        synthlang_proxy(workdir, upstream_url=upstream_url, workers=1, ENABLE_CACHE="0") as proxy,
    ):
        off = {"Authorization": f"Bearer {proxy.key}", "x-synthlang-compression": "off"}
        mask = {**off, "x-synthlang-pii": "mask"}
        chat = f"{proxy.url}/v1/chat/completions"
        series = {
            "upstream direct": (f"{upstream_url}/v1/chat/completions", PII_BODY, {}),
            "proxy, PII off (prompt with PII)": (chat, PII_BODY, off),
            "proxy, PII mask (prompt without PII)": (chat, CLEAN_BODY, mask),
            "proxy, PII mask (prompt with PII)": (chat, PII_BODY, mask),
        }
        timings: dict[str, list[float]] = {name: [] for name in series}
        async with aiohttp.ClientSession() as session:
            for _ in range(30):  # warm-up
                for url, body, headers in series.values():
                    await timed_post(session, url, body, headers)
            for _ in range(args.requests):
                for name, (url, body, headers) in series.items():
                    timings[name].append(await timed_post(session, url, body, headers))
        direct = percentile(timings["upstream direct"], 0.5)
        return [
            (name, percentile(t, 0.5), percentile(t, 0.5) - direct) for name, t in timings.items()
        ]


def mask_costs() -> list[tuple[int, int, float]]:
    """(prompt characters, findings, median microseconds of mask_body) per prompt size."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from guardrails.masking import Masker, mask_body

    filler = "The shipment left the warehouse on time and reached the port two days later. "
    rows = []
    for repeats in (1, 10, 100):
        text = (filler * 4 + PII_TEXT + " ") * repeats
        body = {"messages": [{"role": "user", "content": text}]}
        samples = []
        for _ in range(50):
            masker = Masker()
            started = time.perf_counter()
            mask_body(body, masker)
            samples.append((time.perf_counter() - started) * 1e6)
        rows.append((len(text), sum(masker.counts.values()), percentile(samples, 0.5)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    rows = asyncio.run(main_async(parser.parse_args()))
    print("| series | p50 ms | added p50 ms |")
    print("|---|---|---|")
    for name, p50, added in rows:
        print(f"| {name} | {p50:.2f} | {added:.2f} |")
    print()
    print("| prompt chars | findings | mask_body p50 µs |")
    print("|---|---|---|")
    for chars, findings, micros in mask_costs():
        print(f"| {chars} | {findings} | {micros:.0f} |")


if __name__ == "__main__":
    main()
