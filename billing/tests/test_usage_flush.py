"""The write path: buffered, flushed in bulk, each event exactly once, nothing lost."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from django.db.models import Sum

from accounts import services as accounts_services
from billing import usage, usage_buffers
from billing.models import DailyUsageRollup, UsageEvent
from billing.tests.conftest import make_event

pytestmark = pytest.mark.django_db


def _rollup_requests() -> int:
    return DailyUsageRollup.objects.aggregate(total=Sum("requests"))["total"] or 0


def _record_many(organization, user, count, **overrides) -> list[dict]:
    events = [make_event(organization, user, **overrides) for _ in range(count)]
    for event in events:
        usage.usage_record(event)
    return events


def test_a_recorded_event_is_stored_priced_and_rolled_up(backend, org_a, alice):
    key, _ = accounts_services.api_key_create(organization=org_a, user=alice, actor=alice)
    event = make_event(org_a, alice, key, cached_tokens=400, tokens_saved=200)
    usage.usage_record(event)
    assert UsageEvent.objects.count() == 0  # nothing written on the request's path

    stats = usage.usage_flush_run()

    stored = UsageEvent.objects.get(request_id=event["request_id"])
    # gpt-4o: 600 fresh * 2.5 + 400 cached * 1.25 + 500 out * 10 = 7000 micros.
    assert stored.cost_micros == 7000
    assert stored.compression_saved_micros == 500  # 200 tokens at $2.50/M
    assert (stored.user_id, stored.api_key_id, stored.price_unknown) == (alice.pk, key.pk, False)
    rollup = DailyUsageRollup.objects.get()
    assert (rollup.user_id, rollup.api_key_id, rollup.model) == (alice.pk, key.pk, "gpt-4o")
    assert (rollup.requests, rollup.cost_micros, rollup.cached_tokens) == (1, 7000, 400)
    assert stats.written == 1
    assert usage.usage_buffer_length() == 0


def test_a_cache_hit_costs_nothing_and_records_what_it_avoided(backend, org_a, alice):
    usage.usage_record(make_event(org_a, alice, cache="hit", cache_tier="exact", tokens_saved=50))
    usage.usage_flush_run()
    stored = UsageEvent.objects.get()
    assert (stored.cost_micros, stored.avoided_cost_micros) == (0, 7500)
    assert stored.compression_saved_micros == 0  # already inside the avoided cost
    assert DailyUsageRollup.objects.get().cache_hits == 1


def test_an_unknown_model_is_priced_by_the_rule_and_flagged(backend, settings, org_a, alice):
    settings.UNKNOWN_MODEL_PRICE_PER_MTOK_USD = "1"
    usage.usage_record(make_event(org_a, alice, model="mystery", upstream_model="mystery-v9"))
    usage.usage_flush_run()
    stored = UsageEvent.objects.get()
    assert stored.price_unknown
    assert stored.cost_micros == 1500
    assert DailyUsageRollup.objects.get().price_unknown_requests == 1


def test_a_public_alias_is_priced_by_its_upstream_model(backend, org_a, alice):
    usage.usage_record(make_event(org_a, alice, model="smart", upstream_model="gpt-4o-mini"))
    usage.usage_flush_run()
    stored = UsageEvent.objects.get()
    assert (stored.cost_micros, stored.price_unknown) == (450, False)  # 150 + 300
    assert DailyUsageRollup.objects.get().model == "smart"


def test_flushing_the_same_events_again_counts_them_once(backend, org_a, alice):
    events = _record_many(org_a, alice, 30)
    usage.usage_flush_run()
    for event in events:  # the proxy (or a recovered batch) hands them over again
        usage.usage_record(event)
    stats = usage.usage_flush_run()
    assert stats.duplicates == 30
    assert UsageEvent.objects.count() == 30
    assert _rollup_requests() == 30


def test_a_flush_failing_halfway_and_retried_stores_each_event_exactly_once(
    backend, settings, monkeypatch, org_a, alice
):
    settings.USAGE_FLUSH_BATCH = 40
    events = _record_many(org_a, alice, 100)
    real_bulk_create = UsageEvent.objects.bulk_create
    calls = {"n": 0}

    def bulk_create_then_crash(rows, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch: half of it goes in, then the DB fails
            real_bulk_create(rows[: len(rows) // 2], **kwargs)
            raise RuntimeError("connection lost mid-batch")
        return real_bulk_create(rows, **kwargs)

    monkeypatch.setattr(UsageEvent.objects, "bulk_create", bulk_create_then_crash)
    with pytest.raises(RuntimeError, match="mid-batch"):
        usage.usage_flush_run()
    # The first batch is committed; the failed one was rolled back and put back.
    assert UsageEvent.objects.count() == 40
    assert usage.usage_buffer_length() == 60

    stats = usage.usage_flush_run()  # the retry

    assert stats.written == 60
    stored = set(UsageEvent.objects.values_list("request_id", flat=True))
    assert stored == {event["request_id"] for event in events}
    assert UsageEvent.objects.count() == 100
    assert _rollup_requests() == 100
    assert DailyUsageRollup.objects.aggregate(c=Sum("cost_micros"))["c"] == 100 * 7500


def test_a_flush_that_dies_after_committing_is_recovered_without_double_counting(
    backend, settings, monkeypatch, org_a, alice
):
    _record_many(org_a, alice, 10)
    buffer_class = usage_buffers.RedisBuffer if backend == "redis" else usage_buffers.MemoryBuffer

    def die(self, flush_id):
        raise SystemExit("worker killed between commit and ack")

    monkeypatch.setattr(buffer_class, "ack", die)
    with pytest.raises(SystemExit):
        usage.usage_flush_run()
    monkeypatch.undo()
    if backend == "redis":
        # The dead flush's processing list is still there; once it is older than the
        # visibility timeout the next flush takes it back.
        assert usage.usage_buffer_length() == 0
        settings.USAGE_FLUSH_VISIBILITY_SECONDS = 0
    stats = usage.usage_flush_run()
    if backend == "redis":
        assert stats.recovered == 10
    assert UsageEvent.objects.count() == 10
    assert _rollup_requests() == 10


def test_malformed_events_are_set_aside_and_do_not_block_the_batch(backend, org_a, alice):
    good = make_event(org_a, alice)
    usage.usage_record(good)
    usage.usage_record({"request_id": "", "organization_id": org_a.pk})
    usage.usage_record(make_event(org_a, alice, created_at="yesterday"))
    stats = usage.usage_flush_run()
    assert stats.invalid == 2
    assert list(UsageEvent.objects.values_list("request_id", flat=True)) == [good["request_id"]]
    if backend == "redis":
        assert usage.sync_redis().llen(usage_buffers.DEAD_LETTER_KEY) == 2
    else:
        assert len(usage.memory_buffer.dead) == 2


def test_usage_of_a_deleted_key_and_user_is_kept(backend, org_a, alice, bob):
    key, _ = accounts_services.api_key_create(organization=org_a, user=bob, actor=alice)
    event = make_event(org_a, bob, key)
    usage.usage_record(event)
    bob.delete()  # cascades to the key
    usage.usage_flush_run()
    stored = UsageEvent.objects.get()
    assert (stored.user_id, stored.api_key_id) == (None, None)
    assert stored.cost_micros == 7500
    assert DailyUsageRollup.objects.get().user_id == 0


def test_rollups_are_per_day_member_key_and_model(backend, org_a, alice, bob):
    day_one = datetime(2025, 3, 1, 23, 59, tzinfo=UTC).isoformat()
    day_two = datetime(2025, 3, 2, 0, 1, tzinfo=UTC).isoformat()
    for user, model, created_at in [
        (alice, "gpt-4o", day_one),
        (alice, "gpt-4o", day_one),
        (alice, "gpt-4o-mini", day_one),
        (bob, "gpt-4o", day_one),
        (alice, "gpt-4o", day_two),
    ]:
        usage.usage_record(
            make_event(
                org_a,
                user,
                model=model,
                upstream_model=model,
                created_at=created_at,
                status_code=200,
            )
        )
    usage.usage_record(
        make_event(
            org_a, alice, created_at=day_two, status_code=500, prompt_tokens=0, completion_tokens=0
        )
    )
    usage.usage_flush_run()
    rows = {
        (row.day.isoformat(), row.user_id, row.model): (row.requests, row.errors)
        for row in DailyUsageRollup.objects.all()
    }
    assert rows == {
        ("2025-03-01", alice.pk, "gpt-4o"): (2, 0),
        ("2025-03-01", alice.pk, "gpt-4o-mini"): (1, 0),
        ("2025-03-01", bob.pk, "gpt-4o"): (1, 0),
        ("2025-03-02", alice.pk, "gpt-4o"): (2, 1),
    }


def test_the_async_hand_off_reaches_the_same_buffer(backend, org_a, alice):
    events = [make_event(org_a, alice) for _ in range(5)]

    async def record_all():
        await asyncio.gather(*(usage.ausage_record(event) for event in events))

    asyncio.run(record_all())
    assert usage.usage_buffer_length() == 5
    usage.usage_flush_run()
    assert UsageEvent.objects.count() == 5


def test_events_are_json_serialisable_for_redis(org_a, alice):
    event = make_event(org_a, alice)
    assert json.loads(usage_buffers.usage_event_encode(event)) == event


def test_redis_outage_falls_back_to_the_in_process_buffer(settings, monkeypatch, org_a, alice):
    import redis

    settings.CACHE_TYPE = "redis"
    settings.REDIS_URL = settings.REDIS_URL or "redis://127.0.0.1:1/0"
    # Nothing listens on port 1: every call fails as with Redis down.
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    monkeypatch.setattr(usage, "sync_redis", lambda: dead)
    event = make_event(org_a, alice)
    usage.usage_record(event)  # must not raise
    assert len(usage.memory_buffer) == 1
    usage.usage_flush_run(redis=False)
    assert UsageEvent.objects.filter(request_id=event["request_id"]).exists()


def test_retention_prunes_raw_events_and_keeps_rollups(backend, settings, org_a, alice):
    from billing.tasks import usage_prune

    settings.USAGE_RETENTION_DAYS = 90
    old = datetime(2020, 1, 1, tzinfo=UTC).isoformat()
    usage.usage_record(make_event(org_a, alice, created_at=old))
    usage.usage_record(make_event(org_a, alice))
    usage.usage_flush_run()
    assert usage_prune() == 1
    assert UsageEvent.objects.count() == 1
    assert _rollup_requests() == 2
