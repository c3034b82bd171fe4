"""The write batcher: writes after the response share a Redis round trip, and each caller
still learns whether its own write landed."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

import pytest
from django.conf import settings as django_settings

from common import redis as shared_redis
from common import redis_pipeline, redis_writes

pytestmark = pytest.mark.skipif(
    not django_settings.REDIS_URL,
    reason="REDIS_URL is not set: the batcher needs a real Redis (CI sets it)",
)

KEY = shared_redis.KEY_PREFIX + "test:batcher:"


@pytest.fixture(autouse=True)
def _fast_paths_on(settings):
    # These tests are about the fast paths themselves: they run in both CI passes.
    settings.SYNTHLANG_FAST_PATHS = True


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
    executed = []  # commands per round trip
    real_execute_many = redis_pipeline.PipelinedConnection.execute_many

    async def counting_execute_many(self, commands, **options):
        executed.append([command[0] for command in commands])
        return await real_execute_many(self, commands, **options)

    monkeypatch.setattr(redis_pipeline.PipelinedConnection, "execute_many", counting_execute_many)

    async def scenario():
        batcher = redis_writes.write_batcher()
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
    assert executed == [["INCRBY", "EXPIRE", "RPUSH"]]  # set-up commands go another way
    assert int(clean_redis.get(KEY + "tokens")) == 3
    assert 60 < clean_redis.ttl(KEY + "tokens") <= 120
    assert clean_redis.lrange(KEY + "events", 0, -1) == [b"first", b"second", b"third"]
    # Each push answers like its own RPUSH would have: the length just after its value.
    assert [replies[1], replies[3], replies[4]] == [1, 2, 3]


def test_writes_after_a_flush_go_in_the_next_batch(clean_redis):
    async def scenario():
        batcher = redis_writes.write_batcher()
        first = await batcher.rpush(KEY + "events", "a")
        second = await batcher.rpush(KEY + "events", "b")
        return first, second

    assert asyncio.run(scenario()) == (1, 2)


def test_a_failed_batch_fails_every_caller_in_it(clean_redis, monkeypatch):
    async def broken_execute_many(self, commands, **options):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(redis_pipeline.PipelinedConnection, "execute_many", broken_execute_many)

    async def scenario():
        batcher = redis_writes.write_batcher()
        return await asyncio.gather(
            batcher.rpush(KEY + "events", "lost?"),
            batcher.incrby(KEY + "tokens", 1, expire_seconds=60),
            return_exceptions=True,
        )

    outcomes = asyncio.run(scenario())
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert clean_redis.exists(KEY + "events") == 0


# --- The pipelined connection ---------------------------------------------------------------


def test_concurrent_commands_on_one_connection_get_their_own_replies(clean_redis):
    async def scenario():
        connection = shared_redis.pipelined_redis()
        replies = await asyncio.gather(
            *(connection.execute("INCRBY", KEY + "n", amount) for amount in range(1, 101))
        )
        ids = await asyncio.gather(*(connection.execute("CLIENT", "ID") for _ in range(20)))
        return replies, ids

    replies, ids = asyncio.run(scenario())
    # Each caller saw the counter right after its own increment, in the order they were sent.
    assert replies == [n * (n + 1) // 2 for n in range(1, 101)]
    assert len(set(ids)) == 1  # all of them shared one connection
    assert int(clean_redis.get(KEY + "n")) == 5050


def test_the_url_database_is_selected(clean_redis):
    async def scenario():
        await shared_redis.pipelined_redis().execute("SET", KEY + "where", "here")

    asyncio.run(scenario())
    # clean_redis is redis-py's client on the same URL, so the same database.
    assert clean_redis.get(KEY + "where") == b"here"


def test_an_error_reply_raises_redis_pys_error_and_the_connection_goes_on(clean_redis):
    async def scenario():
        connection = shared_redis.pipelined_redis()
        await connection.execute("SET", KEY + "text", "not a number")
        with pytest.raises(shared_redis.redis.exceptions.ResponseError):
            await connection.execute("INCRBY", KEY + "text", 1)
        return await connection.execute("GET", KEY + "text")

    assert asyncio.run(scenario()) == b"not a number"


def test_a_command_that_cannot_be_sent_leaves_the_connection_in_step(clean_redis):
    async def scenario():
        connection = shared_redis.pipelined_redis()
        await connection.execute("SET", KEY + "a", "1")
        with pytest.raises(TypeError):
            await connection.execute("SET", KEY + "b", None)
        return await connection.execute("GET", KEY + "a")

    assert asyncio.run(scenario()) == b"1"


def test_a_script_the_server_lost_is_sent_by_its_text(clean_redis):
    # A script this server has never seen (no SCRIPT FLUSH: the server is shared).
    script = f"-- {uuid.uuid4()}\nreturn tonumber(ARGV[1]) * 2"
    sha = hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis's script id

    async def scenario():
        connection = shared_redis.pipelined_redis()
        first = await connection.evalsha(script, sha, [], [21])
        cached = await connection.execute("SCRIPT", "EXISTS", sha)
        return first, cached

    first, cached = asyncio.run(scenario())
    assert first == 42
    assert cached == [1]  # EVAL loaded it: the next call goes by SHA again


def test_a_killed_connection_fails_its_callers_and_the_next_command_reconnects(clean_redis):
    async def scenario():
        connection = shared_redis.pipelined_redis()
        own_id = await connection.execute("CLIENT", "ID")
        pending = asyncio.ensure_future(connection.execute("BLPOP", KEY + "never", 1))
        await asyncio.sleep(0.05)
        clean_redis.client_kill_filter(_id=own_id)
        with pytest.raises(shared_redis.redis.exceptions.ConnectionError):
            await pending
        new_id = await connection.execute("CLIENT", "ID")
        return own_id, new_id

    own_id, new_id = asyncio.run(scenario())
    assert new_id != own_id


def test_no_answer_in_time_closes_the_connection(clean_redis, monkeypatch):
    monkeypatch.setattr(redis_pipeline, "SOCKET_TIMEOUT_SECONDS", 0.2)

    async def scenario():
        connection = shared_redis.pipelined_redis()
        first_id = await connection.execute("CLIENT", "ID")
        with pytest.raises(shared_redis.redis.exceptions.TimeoutError):
            await connection.execute("BLPOP", KEY + "never", 2)
        return first_id, await connection.execute("CLIENT", "ID")

    first_id, second_id = asyncio.run(scenario())
    assert second_id != first_id


def test_commands_queued_behind_an_unanswered_one_time_out_with_it(clean_redis, monkeypatch):
    monkeypatch.setattr(redis_pipeline, "SOCKET_TIMEOUT_SECONDS", 0.2)

    async def scenario():
        connection = shared_redis.pipelined_redis()
        blocked = asyncio.ensure_future(connection.execute("BLPOP", KEY + "never", 2))
        await asyncio.sleep(0.1)
        behind = asyncio.ensure_future(connection.execute("PING"))
        outcomes = await asyncio.gather(blocked, behind, return_exceptions=True)
        return [type(outcome) for outcome in outcomes]

    # A BLPOP left to its 2 s would answer None: the errors are the watchdog's.
    assert asyncio.run(scenario()) == [shared_redis.redis.exceptions.TimeoutError] * 2


def test_a_connection_answering_promptly_outlives_the_timeout(clean_redis, monkeypatch):
    monkeypatch.setattr(redis_pipeline, "SOCKET_TIMEOUT_SECONDS", 0.2)

    async def scenario():
        connection = shared_redis.pipelined_redis()
        first_id = await connection.execute("CLIENT", "ID")
        deadline = time.monotonic() + 0.7
        answered = 0
        while time.monotonic() < deadline:
            # Always a command in flight, so the watchdog finds one waiting each time it runs.
            replies = await asyncio.gather(connection.execute("PING"), asyncio.sleep(0.01))
            answered += replies[0] == b"PONG"
        return first_id, await connection.execute("CLIENT", "ID"), answered

    first_id, last_id, answered = asyncio.run(scenario())
    assert last_id == first_id
    assert answered > 20


def test_a_refused_connection_is_redis_pys_connection_error(monkeypatch):
    monkeypatch.setattr(shared_redis.settings, "REDIS_URL", "redis://127.0.0.1:1/0")

    async def scenario():
        with pytest.raises(shared_redis.redis.exceptions.ConnectionError):
            await shared_redis.pipelined_redis().execute("PING")

    asyncio.run(scenario())


def test_a_refused_database_fails_the_connection_and_writes_nowhere(clean_redis, monkeypatch):
    base = shared_redis.settings.REDIS_URL.rsplit("/", 1)[0]
    monkeypatch.setattr(shared_redis.settings, "REDIS_URL", f"{base}/99999")

    async def scenario():
        with pytest.raises(shared_redis.redis.exceptions.ConnectionError, match="refused"):
            await shared_redis.pipelined_redis().execute("SET", KEY + "stray", "x")

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert clean_redis.exists(KEY + "stray") == 0
    # Nor in database 0, where a command sent behind a failed SELECT would have run.
    other = shared_redis.redis.Redis.from_url(f"{base}/0")
    assert other.exists(KEY + "stray") == 0


def test_a_connection_whose_callers_all_left_is_not_handed_out_later(clean_redis):
    async def scenario():
        connection = shared_redis.pipelined_redis()
        first = asyncio.ensure_future(connection.execute("CLIENT", "ID"))
        await asyncio.sleep(0)
        first.cancel()  # the only caller leaves while the connection is being made
        await asyncio.sleep(0.2)
        own_id = await connection.execute("CLIENT", "ID")
        clean_redis.client_kill_filter(_id=own_id)
        await asyncio.sleep(0.1)
        # The next caller gets a new connection, not the finished attempt's dead one.
        return own_id, await connection.execute("CLIENT", "ID")

    own_id, new_id = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert new_id != own_id


def test_an_error_on_one_key_fails_only_its_callers(clean_redis):
    clean_redis.set(KEY + "events", "a string, not a list")

    async def scenario():
        batcher = redis_writes.write_batcher()
        return await asyncio.gather(
            batcher.rpush(KEY + "events", "lost"),
            batcher.rpush(KEY + "other", "kept"),
            batcher.incrby(KEY + "tokens", 3, expire_seconds=60),
            return_exceptions=True,
        )

    failed, length, settled = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert isinstance(failed, shared_redis.redis.exceptions.ResponseError)
    assert (length, settled) == (1, None)
    assert int(clean_redis.get(KEY + "tokens")) == 3
