"""Redis writes that may trail the response: batched on the fast client, direct otherwise.

Rate-limit token settlement and usage events are written after the answer has gone, so they
can wait a few milliseconds to share one round trip with other requests' writes.
"""

from __future__ import annotations

import asyncio

from common.loops import forget_closed_loops
from common.redis import async_redis, fast_client_in_use, pipelined_redis

# How long a write waits for others to share its round trip. Each round trip costs the event
# loop 100-170 µs of CPU; the writes batched here (rate-limit token settlement, usage events)
# happen after the response is sent, so a few milliseconds of delay cost the client nothing.
BATCH_DELAY_SECONDS = 0.01


class WriteBatcher:
    """Collects INCRBY and RPUSH writes for a moment and sends them as one pipeline.

    Increments to the same key are summed; values pushed to the same list go in one RPUSH.
    Each caller awaits its own write as if it had sent it alone: it returns once Redis has
    it, and raises if its own command failed (or the whole round trip did), so fallbacks
    stay the caller's. Bound to one event loop, like the connection it uses.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._increments: dict[str, list] = {}  # key -> [total, expire seconds, futures]
        self._pushes: dict[str, list] = {}  # key -> [(value, future), ...]
        self._scheduled = False
        self._flushes: set[asyncio.Task] = set()

    def incrby(self, key: str, amount: int, *, expire_seconds: int) -> asyncio.Future:
        future = self._loop.create_future()
        pending = self._increments.get(key)
        if pending is None:
            self._increments[key] = [amount, expire_seconds, [future]]
        else:
            pending[0] += amount
            pending[1] = max(pending[1], expire_seconds)
            pending[2].append(future)
        self._schedule()
        return future

    def rpush(self, key: str, value: str) -> asyncio.Future:
        """Resolves to the list's length just after this value, as RPUSH would answer."""
        future = self._loop.create_future()
        self._pushes.setdefault(key, []).append((value, future))
        self._schedule()
        return future

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_later(BATCH_DELAY_SECONDS, self._start_flush)

    def _start_flush(self) -> None:
        self._scheduled = False
        increments, self._increments = self._increments, {}
        pushes, self._pushes = self._pushes, {}
        task = self._loop.create_task(self._flush(increments, pushes))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, increments: dict[str, list], pushes: dict[str, list]) -> None:
        commands: list[tuple] = []
        for key, (amount, expire_seconds, _futures) in increments.items():
            commands += [("INCRBY", key, amount), ("EXPIRE", key, expire_seconds)]
        for key, items in pushes.items():
            commands.append(("RPUSH", key, *(value for value, _future in items)))
        try:
            replies = await pipelined_redis().execute_many(commands, raise_errors=False)
        except BaseException as error:
            # Nothing reached Redis (or nothing is known to have): every caller learns it.
            message = str(error) or type(error).__name__
            failure = type(error) if isinstance(error, Exception) else ConnectionError
            for _amount, _expire, futures in increments.values():
                for future in futures:
                    _settle(future, error=failure(message))
            for items in pushes.values():
                for _value, future in items:
                    _settle(future, error=failure(message))
            if not isinstance(error, Exception):
                raise
            return
        # Each caller gets its own command's outcome: an error on one key fails only the
        # callers of that key.
        position = 0
        for _amount, _expire, futures in increments.values():
            failed = next(
                (r for r in replies[position : position + 2] if isinstance(r, Exception)), None
            )
            for future in futures:
                _settle(future, error=failed)
            position += 2
        for items, length in zip(pushes.values(), replies[position:], strict=True):
            if isinstance(length, Exception):
                for _value, future in items:
                    _settle(future, error=length)
                continue
            first = int(length) - len(items)
            for offset, (_value, future) in enumerate(items, start=1):
                _settle(future, result=first + offset)


def _settle(future: asyncio.Future, *, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_batchers: dict[asyncio.AbstractEventLoop, WriteBatcher] = {}


def write_batcher() -> WriteBatcher | DirectWrites:
    """The running loop's batcher (its writes go through that loop's client); each write
    its own redis-py round trip when the fast client is not in use."""
    if not fast_client_in_use():
        return _DIRECT_WRITES
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        forget_closed_loops(_batchers)
        batcher = _batchers[loop] = WriteBatcher(loop)
    return batcher


class DirectWrites:
    """``WriteBatcher``'s interface, each write sent when it is made."""

    async def incrby(self, key: str, amount: int, *, expire_seconds: int) -> None:
        pipe = async_redis().pipeline(transaction=False)
        pipe.incrby(key, amount)
        pipe.expire(key, expire_seconds)
        await pipe.execute()

    async def rpush(self, key: str, value: str) -> int:
        return await async_redis().rpush(key, value)


_DIRECT_WRITES = DirectWrites()
