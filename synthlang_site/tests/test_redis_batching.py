"""The write batcher: writes after the response share a Redis round trip, and each caller
still learns whether its own write landed."""

from __future__ import annotations

import asyncio

import pytest
from django.conf import settings as django_settings

from common import redis as shared_redis

pytestmark = pytest.mark.skipif(
    not django_settings.REDIS_URL,
    reason="REDIS_URL is not set: the batcher needs a real Redis (CI sets it)",
)

KEY = shared_redis.KEY_PREFIX + "test:batcher:"


@pytest.fixture
def clean_redis():
    shared_redis._async_clients.clear()  # a client is bound to the loop of its test
    client = shared_redis.sync_redis()
    for key in client.scan_iter(match=KEY + "*"):
        client.delete(key)
    yield client
    for key in client.scan_iter(match=KEY + "*"):
        client.delete(key)
    shared_redis._async_clients.clear()


def test_writes_of_one_moment_go_in_one_pipeline_with_increments_summed(clean_redis, monkeypatch):
    executed = []  # commands per pipeline sent
    real_execute = shared_redis.aredis.client.Pipeline.execute

    async def counting_execute(self, *args, **kwargs):
        executed.append([command[0][0] for command in self.command_stack])
        return await real_execute(self, *args, **kwargs)

    monkeypatch.setattr(shared_redis.aredis.client.Pipeline, "execute", counting_execute)

    async def scenario():
        batcher = shared_redis.write_batcher()
        lengths = await asyncio.gather(
            batcher.incrby(KEY + "tokens", 5, expire_seconds=60),
            batcher.rpush(KEY + "events", "first"),
            batcher.incrby(KEY + "tokens", -2, expire_seconds=120),
            batcher.rpush(KEY + "events", "second"),
            batcher.rpush(KEY + "events", "third"),
        )
        return lengths

    replies = asyncio.run(scenario())
    # Summed into one INCRBY and one EXPIRE; the three values in one RPUSH.
    assert executed == [["INCRBY", "EXPIRE", "RPUSH"]]
    assert int(clean_redis.get(KEY + "tokens")) == 3
    assert 60 < clean_redis.ttl(KEY + "tokens") <= 120
    assert clean_redis.lrange(KEY + "events", 0, -1) == [b"first", b"second", b"third"]
    # Each push answers like its own RPUSH would have: the length just after its value.
    assert [replies[1], replies[3], replies[4]] == [1, 2, 3]


def test_writes_after_a_flush_go_in_the_next_batch(clean_redis):
    async def scenario():
        batcher = shared_redis.write_batcher()
        first = await batcher.rpush(KEY + "events", "a")
        second = await batcher.rpush(KEY + "events", "b")
        return first, second

    assert asyncio.run(scenario()) == (1, 2)


def test_a_failed_batch_fails_every_caller_in_it(clean_redis, monkeypatch):
    async def broken_execute(self, *args, **kwargs):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(shared_redis.aredis.client.Pipeline, "execute", broken_execute)

    async def scenario():
        batcher = shared_redis.write_batcher()
        return await asyncio.gather(
            batcher.rpush(KEY + "events", "lost?"),
            batcher.incrby(KEY + "tokens", 1, expire_seconds=60),
            return_exceptions=True,
        )

    outcomes = asyncio.run(scenario())
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert clean_redis.exists(KEY + "events") == 0
