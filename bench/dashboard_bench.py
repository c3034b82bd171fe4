"""The admin dashboard with 1,000,000 usage events in the database: server time per render.

Fills a scratch test database (created and dropped by the run) with one million raw
usage events, bulk-inserted, and the daily rollups those events add up to, then renders
the admin index (the dashboard's home) through Django's test client and reports the
median and p95 server time over 20 renders per period, for platform staff (every
organization) and for an organization admin. It also checks the dashboard's queries:
none may read the raw events table.

    .venv/bin/python bench/dashboard_bench.py            # embedded SQLite
    DATABASE_URL=postgresql://... .venv/bin/python bench/dashboard_bench.py

Target: p50 under 300 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("LOG_FILE", "")
os.environ.setdefault("USAGE_FLUSH_IN_BACKGROUND", "false")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_databases, teardown_databases  # noqa: E402

TARGET_MS = 300.0
RENDERS = 20
DAYS_OF_DATA = 90
ORGANIZATIONS = 20
MEMBERS_PER_ORG = 4
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "o3-mini", "text-embedding-3-small")
BATCH = 20_000


def _cast():
    from accounts import services

    staff, _ = services.user_get_or_create(username="bench-staff", email="staff@example.com")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    organizations, members = [], []
    for number in range(ORGANIZATIONS):
        organization = services.organization_create(name=f"Bench {number}", slug=f"bench-{number}")
        organizations.append(organization)
        for member in range(MEMBERS_PER_ORG):
            user, _ = services.user_get_or_create(username=f"bench-{number}-{member}")
            role = "admin" if member == 0 else "basic"
            services.membership_set(organization=organization, user=user, role=role, actor=None)
            api_key, _ = services.api_key_create(
                organization=organization, user=user, name="bench", actor=None
            )
            members.append((organization.pk, user.pk, api_key.pk))
    admin_user = services.user_get_or_create(username="bench-0-0")[0]
    return staff, admin_user, members


def _fill(members, events: int) -> tuple[float, float]:
    """Insert ``events`` raw events and their rollups; returns (events s, rollups s)."""
    from billing.models import DailyUsageRollup, UsageEvent

    fields = [field for field in UsageEvent._meta.concrete_fields if not field.primary_key]
    defaults = {field.attname: field.get_default() for field in fields}
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {UsageEvent._meta.db_table} ({columns}) VALUES ({placeholders})"  # noqa: S608 - model metadata only
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    rng = random.Random(42)
    sums: dict[tuple, list] = defaultdict(lambda: [0] * 10)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        rows = []
        for index in range(events):
            organization_id, user_id, key_id = members[index % len(members)]
            day_offset = rng.randrange(DAYS_OF_DATA)
            created_at = now - timedelta(days=day_offset, seconds=rng.randrange(40_000))
            # Drawn, not derived from the index: every member uses every model.
            model = rng.choice(MODELS)
            prompt, completion = rng.randrange(50, 2000), rng.randrange(10, 600)
            hit = rng.random() < 0.2
            error = rng.random() < 0.02
            cost = 0 if hit else prompt * 3 + completion * 10
            latency = rng.uniform(80, 2500)
            values = {
                **defaults,
                "request_id": f"bench-{index}",
                "created_at": created_at,
                "recorded_at": created_at,
                "organization_id": organization_id,
                "user_id": user_id,
                "api_key_id": key_id,
                "endpoint": "chat.completions",
                "model": model,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "status_code": 500 if error else 200,
                "cache": "hit" if hit else "miss",
                "tokens_saved": prompt // 10,
                "latency_ms": latency,
                "overhead_ms": 4.0,
                "cost_micros": cost,
                "avoided_cost_micros": prompt * 3 + completion * 10 if hit else 0,
                "compression_saved_micros": prompt // 10 * 3,
            }
            rows.append(
                tuple(
                    connection.ops.adapt_datetimefield_value(values[f.attname])
                    if f.get_internal_type() == "DateTimeField"
                    else values[f.attname]
                    for f in fields
                )
            )
            key = (created_at.date(), organization_id, user_id, key_id, model)
            total = sums[key]
            for position, amount in enumerate(
                (
                    1,
                    int(error),
                    prompt,
                    completion,
                    cost,
                    int(hit),
                    values["avoided_cost_micros"],
                    values["tokens_saved"],
                    values["compression_saved_micros"],
                    latency,
                )
            ):
                total[position] += amount
            if len(rows) >= BATCH:
                cursor.executemany(sql, rows)
                rows = []
        if rows:
            cursor.executemany(sql, rows)
    events_seconds = time.perf_counter() - started
    started = time.perf_counter()
    names = (
        "requests",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "cost_micros",
        "cache_hits",
        "avoided_cost_micros",
        "tokens_saved",
        "compression_saved_micros",
        "latency_ms_sum",
    )
    DailyUsageRollup.objects.bulk_create(
        (
            DailyUsageRollup(
                day=day,
                organization_id=organization_id,
                user_id=user_id,
                api_key_id=key_id,
                model=model,
                overhead_ms_sum=4.0 * total[0],
                **dict(zip(names, total, strict=True)),
            )
            for (day, organization_id, user_id, key_id, model), total in sums.items()
        ),
        batch_size=5000,
    )
    return events_seconds, time.perf_counter() - started


def _measure(client: Client, url: str) -> tuple[float, float, int, bool]:
    """(p50 ms, p95 ms, queries per render, whether any query read the raw events)."""
    client.get(url)  # warm: templates, URL resolver, price and permission caches
    timings = []
    for _ in range(RENDERS):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        assert b'id="synthlang-dashboard"' in response.content
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    scans_events = any("billing_usageevent" in query["sql"] for query in queries.captured_queries)
    timings.sort()
    p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
    return statistics.median(timings), p95, len(queries.captured_queries), scans_events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        from billing.models import DailyUsageRollup, UsageEvent

        staff, admin_user, members = _cast()
        events_seconds, rollup_seconds = _fill(members, args.events)
        print(
            f"database: {connection.vendor}; {UsageEvent.objects.count():,} usage events "
            f"(inserted in {events_seconds:.1f}s), "
            f"{DailyUsageRollup.objects.count():,} rollup rows ({rollup_seconds:.1f}s), "
            f"{ORGANIZATIONS} organizations, {DAYS_OF_DATA} days"
        )
        print()
        target = f"p50 < {TARGET_MS:.0f} ms"
        print(f"| viewer | period | p50 ms | p95 ms | queries | reads raw events | {target} |")
        print("|---|---|---|---|---|---|---|")
        failed = False
        for label, user in (("platform staff", staff), ("organization admin", admin_user)):
            client = Client()
            client.force_login(user)
            for days in (7, 30, 90):
                p50, p95, queries, scans = _measure(client, f"/admin/?days={days}")
                ok = p50 < TARGET_MS and not scans
                failed |= not ok
                print(
                    f"| {label} | {days} days | {p50:.1f} | {p95:.1f} | {queries} | "
                    f"{'yes' if scans else 'no'} | {'yes' if ok else 'NO'} |"
                )
        if failed:
            sys.exit(1)
    finally:
        teardown_databases(old_config, verbosity=0)


if __name__ == "__main__":
    main()
