"""Timed JSON POSTs shared by the endpoint benchmarks (Responses, Messages, chat).

``proxy_bench.py`` times GET-shaped chat calls with a fixed body; these two send any body,
so each endpoint's benchmark compares its own wire format against chat on one proxy.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp


async def timed_post(session: aiohttp.ClientSession, url: str, body: dict, headers: dict) -> float:
    """One request's wall time in milliseconds; anything but a 200 stops the benchmark."""
    started = time.perf_counter()
    async with session.post(url, json=body, headers=headers) as response:
        await response.read()
        assert response.status == 200, await response.text()
    return (time.perf_counter() - started) * 1000


async def post_throughput(
    url: str, body: dict, headers: dict, seconds: float, *, connections: int
) -> float:
    """Successful answers per second with ``connections`` clients posting back to back."""
    done = 0
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker():
            nonlocal done
            while time.monotonic() < stop_at:
                async with session.post(url, json=body, headers=headers) as response:
                    await response.read()
                    done += response.status == 200

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done / (time.monotonic() - started)
