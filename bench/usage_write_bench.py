"""The usage write path at 1,000 requests per second: what it adds to the hot path.

Measures, in one run:
- the time a request spends handing its usage event over (``usage_record`` /
  ``ausage_record``) at a steady 1,000 events/s while a flusher drains the buffer into
  the database, against the same loop without accounting;
- flush throughput: events per second moved from the buffer into the database with
  their rollups.

Run against the real components for production figures:
    DATABASE_URL=postgresql://... REDIS_URL=redis://.../N \
        .venv/bin/python bench/usage_write_bench.py
It creates and drops its own test database (``test_<name>``), and uses only the
``synthlang:billing:*`` keys of the Redis database it is given.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("LOG_FILE", "")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

RATE = 1000  # events per second
SECONDS = 4
FLUSH_EVENTS = 20_000


def _event(organization_id: int, user_id: int, key_id: int) -> dict:
    return {
        "request_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC).isoformat(),
        "organization_id": organization_id,
        "user_id": user_id,
        "api_key_id": key_id,
        "endpoint": "chat.completions",
        "model": "gpt-4o-mini",
        "upstream_model": "gpt-4o-mini",
        "provider": "fake",
        "deployment": "fake/default",
        "prompt_tokens": 812,
        "completion_tokens": 143,
        "cached_tokens": 256,
        "status_code": 200,
        "error_code": "",
        "stream": False,
        "client_disconnected": False,
        "cache": "miss",
        "cache_tier": "",
        "tokens_saved": 97,
        "compression_level": "medium",
        "latency_ms": 180.4,
        "upstream_ms": 176.9,
        "overhead_ms": 1.7,
    }


def _percentiles(samples_ns: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] / 1000
    return p50, p99, statistics.fmean(ordered) / 1000


def _paced_sync(record, ids) -> list[int]:
    """Call ``record`` at RATE per second for SECONDS; the time of each call, in ns."""
    samples = []
    interval = 1 / RATE
    start = time.perf_counter()
    for index in range(RATE * SECONDS):
        due = start + index * interval
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        event = _event(*ids)
        began = time.perf_counter_ns()
        record(event)
        samples.append(time.perf_counter_ns() - began)
    return samples


def _paced_async(arecord, ids) -> list[int]:
    async def run():
        samples = []
        interval = 1 / RATE
        start = time.perf_counter()
        for index in range(RATE * SECONDS):
            pause = start + index * interval - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            event = _event(*ids)
            began = time.perf_counter_ns()
            await arecord(event)
            samples.append(time.perf_counter_ns() - began)
        return samples

    return asyncio.run(run())


def _paced_async_in_background(arecord, ids) -> tuple[list[int], float]:
    """As the gateway hands events over: each ``ausage_record`` runs as a background task
    after its response. Returns how long each took to land in Redis (the write batch's wait
    included) and the event loop's CPU time per event, which is what requests pay for."""

    async def run():
        samples = []
        tasks = []
        interval = 1 / RATE

        async def timed(event):
            began = time.perf_counter_ns()
            await arecord(event)
            samples.append(time.perf_counter_ns() - began)

        cpu_started = time.process_time()
        start = time.perf_counter()
        for index in range(RATE * SECONDS):
            pause = start + index * interval - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            tasks.append(asyncio.ensure_future(timed(_event(*ids))))
        await asyncio.gather(*tasks)
        cpu_per_event = (time.process_time() - cpu_started) / len(tasks) * 1e6
        return samples, cpu_per_event

    return asyncio.run(run())


class _Flusher(threading.Thread):
    """Stands in for the Celery worker: drains the buffer while the requests come in."""

    def __init__(self, usage, redis: bool):
        super().__init__(daemon=True)
        self.usage, self.redis, self.stop = usage, redis, threading.Event()

    def run(self):
        from django.db import connection

        while not self.stop.is_set():
            self.usage.usage_flush_run(redis=self.redis)
            self.stop.wait(0.25)
        self.usage.usage_flush_run(redis=self.redis)
        connection.close()


def main() -> None:
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    settings.USAGE_FLUSH_BATCH = 1000
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        _run()
    finally:
        teardown_databases(old_config, verbosity=0)


def _run() -> None:
    from accounts import services as accounts_services
    from billing import usage
    from billing.models import DailyUsageRollup, UsageEvent
    from common.redis import sync_redis

    organization = accounts_services.organization_create(name="Bench", slug="bench")
    user, _ = accounts_services.user_get_or_create(username="bench")
    accounts_services.membership_set(organization=organization, user=user, role="admin", actor=None)
    key, _ = accounts_services.api_key_create(organization=organization, user=user, actor=None)
    ids = (organization.pk, user.pk, key.pk)
    has_redis = bool(settings.REDIS_URL)
    if has_redis:
        client = sync_redis()
        for name in client.scan_iter(match="synthlang:billing:*"):
            client.delete(name)

    rows = []

    def measure(label, samples):
        p50, p99, mean = _percentiles(samples)
        rows.append((label, p50, p99, mean))

    background_cpu = 0.0

    # Without accounting: the same loop and event construction, no hand-off.
    measure("without accounting", _paced_sync(lambda event: None, ids))

    settings.CACHE_TYPE = "memory"
    flusher = _Flusher(usage, redis=False)
    flusher.start()
    measure("usage_record, in-process buffer", _paced_sync(usage.usage_record, ids))
    flusher.stop.set()
    flusher.join()

    if has_redis:
        # With Redis the flush runs in the Celery worker, another process: it does not
        # share this process's GIL, so the buffer is drained after the measurement.
        settings.CACHE_TYPE = "redis"
        measure("usage_record, Redis RPUSH", _paced_sync(usage.usage_record, ids))
        measure("ausage_record, redis.asyncio", _paced_async(usage.ausage_record, ids))

        async def no_hand_off(event):
            return None

        _, baseline_cpu = _paced_async_in_background(no_hand_off, ids)
        landed, cpu_per_event = _paced_async_in_background(usage.ausage_record, ids)
        measure("ausage_record in background (landed)", landed)
        background_cpu = cpu_per_event - baseline_cpu
        usage.usage_flush_run(redis=True, max_batches=10_000)

    stored = UsageEvent.objects.count()
    expected = RATE * SECONDS * (4 if has_redis else 1)
    assert stored == expected, f"{stored} events stored, {expected} recorded"

    throughput = []
    for backend in ["memory", "redis"] if has_redis else ["memory"]:
        settings.CACHE_TYPE = backend
        events = [_event(*ids) for _ in range(FLUSH_EVENTS)]
        for event in events:
            usage.usage_record(event)
        began = time.perf_counter()
        stats = usage.usage_flush_run(redis=backend == "redis", max_batches=10_000)
        elapsed = time.perf_counter() - began
        assert stats.written == FLUSH_EVENTS, stats
        throughput.append((backend, FLUSH_EVENTS / elapsed, elapsed))

    database = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(
        f"\nUsage write path at {RATE} events/s for {SECONDS}s each "
        f"(database: {database}, Redis: {'yes' if has_redis else 'no'}, "
        f"in-process flusher draining concurrently)\n"
    )
    print(f"{'hand-off':<36} {'p50 µs':>9} {'p99 µs':>9} {'mean µs':>9}")
    for label, p50, p99, mean in rows:
        print(f"{label:<36} {p50:>9.1f} {p99:>9.1f} {mean:>9.1f}")
    if has_redis:
        print(
            f"ausage_record in background: {background_cpu:.0f} µs of CPU per event more than "
            "the same paced tasks without a hand-off (the write batch shares round trips)"
        )
    print(f"\n{'flush (buffer -> ' + database + ')':<36} {'events/s':>9} {'seconds':>9}")
    for backend, rate, elapsed in throughput:
        print(f"{backend + ' buffer, batches of 1000':<36} {rate:>9.0f} {elapsed:>9.2f}")
    print(
        f"\nstored {UsageEvent.objects.count()} events exactly once; "
        f"{DailyUsageRollup.objects.count()} rollup rows"
    )


if __name__ == "__main__":
    main()
