"""The two buffers of the usage write path, with one interface: claim, ack, nack.

A Redis list in production, shared by every proxy instance, and an in-process deque in the
embedded default. A claim moves a batch to a processing list of its own in one step, so no
event is ever in neither; ``billing.usage`` hands events to them and drains them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from common.redis import redis_target_in_use

BUFFER_KEY = "synthlang:billing:usage:buffer"
PROCESSING_INDEX_KEY = "synthlang:billing:usage:processing"
PROCESSING_KEY_PREFIX = "synthlang:billing:usage:processing:"
DEAD_LETTER_KEY = "synthlang:billing:usage:dead"


@dataclass(frozen=True)
class UsageKeys:
    buffer: str
    processing_index: str
    processing_prefix: str
    dead_letter: str


_KEYS = UsageKeys(BUFFER_KEY, PROCESSING_INDEX_KEY, PROCESSING_KEY_PREFIX, DEAD_LETTER_KEY)
# On a Redis Cluster the claim and requeue scripts' keys must share one slot: the same names
# with a hash tag. One server and Sentinel keep the names events were buffered under before
# (an upgrade must not strand them); a cluster is new, so it has no such events.
_CLUSTER_KEYS = UsageKeys(
    "synthlang:billing:{usage}:buffer",
    "synthlang:billing:{usage}:processing",
    "synthlang:billing:{usage}:processing:",
    "synthlang:billing:{usage}:dead",
)


def usage_keys() -> UsageKeys:
    """The buffer's key names for the Redis in use."""
    return _CLUSTER_KEYS if redis_target_in_use().is_cluster else _KEYS


def usage_event_encode(event: dict) -> str:
    """An event as the Redis buffer and the dead-letter list hold it."""
    return json.dumps(event, separators=(",", ":"), default=str)


# --- Redis buffer --------------------------------------------------------------------------

# Move up to ARGV[1] events from the buffer to this flush's processing list, and note
# when it claimed them, in one atomic step: no event is ever in neither list.
_CLAIM_LUA = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then return items end
redis.call('LTRIM', KEYS[1], #items, -1)
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return items
"""

# Return a processing list to the buffer (a failed flush, or a stale one of a dead
# flush) and forget it. ARGV[2] > 0 only requeues when the claim is still that old, so
# a flush that finished in the meantime is not undone.
_REQUEUE_LUA = """
local claimed = redis.call('ZSCORE', KEYS[3], ARGV[1])
if tonumber(ARGV[2]) > 0 and (not claimed or tonumber(claimed) > tonumber(ARGV[2])) then
  return 0
end
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return #items
"""


class RedisBuffer:
    def __init__(self, client) -> None:
        self.client = client
        self.keys = usage_keys()
        self._claim = client.register_script(_CLAIM_LUA)
        self._requeue = client.register_script(_REQUEUE_LUA)

    def claim(self, limit: int) -> tuple[str, list]:
        flush_id = uuid.uuid4().hex
        keys = self.keys
        items = self._claim(
            keys=[keys.buffer, keys.processing_prefix + flush_id, keys.processing_index],
            args=[limit, flush_id, time.time()],
        )
        return flush_id, list(items)

    def ack(self, flush_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.processing_prefix + flush_id)
        pipe.zrem(self.keys.processing_index, flush_id)
        pipe.execute()

    def nack(self, flush_id: str) -> None:
        keys = self.keys
        self._requeue(
            keys=[keys.processing_prefix + flush_id, keys.buffer, keys.processing_index],
            args=[flush_id, 0],
        )

    def recover_stale(self, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        keys = self.keys
        recovered = 0
        for raw in self.client.zrangebyscore(self.keys.processing_index, "-inf", cutoff):
            flush_id = raw.decode() if isinstance(raw, bytes) else raw
            recovered += int(
                self._requeue(
                    keys=[keys.processing_prefix + flush_id, keys.buffer, keys.processing_index],
                    args=[flush_id, cutoff],
                )
            )
        return recovered

    def dead_letter(self, items: list) -> None:
        self.client.rpush(self.keys.dead_letter, *items)

    def __len__(self) -> int:
        return int(self.client.llen(self.keys.buffer))


# --- In-process buffer ---------------------------------------------------------------------


class MemoryBuffer:
    """The embedded mode's buffer. Single process by design (see docs/decisions/0006)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque = deque()
        self._processing: dict[str, list] = {}
        self.dead: list = []

    def push(self, item) -> int:
        with self._lock:
            self._items.append(item)
            return len(self._items)

    def claim(self, limit: int) -> tuple[str, list]:
        flush_id = uuid.uuid4().hex
        with self._lock:
            batch = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            if batch:
                self._processing[flush_id] = batch
        return flush_id, batch

    def ack(self, flush_id: str) -> None:
        with self._lock:
            self._processing.pop(flush_id, None)

    def nack(self, flush_id: str) -> None:
        with self._lock:
            # Back to the front: these are the oldest events.
            self._items.extendleft(reversed(self._processing.pop(flush_id, [])))

    def recover_stale(self, older_than_seconds: float) -> int:
        return 0  # a failing flush in this process always nacks; nothing can be orphaned

    def requeue_in_flight(self) -> int:
        """Put the batches a flush holds back in the buffer (the process is exiting and
        that flush's thread may never finish); a batch also written by that flush is not
        written twice: writes are idempotent."""
        with self._lock:
            batches, self._processing = list(self._processing.values()), {}
            for batch in reversed(batches):
                self._items.extendleft(reversed(batch))
            return sum(len(batch) for batch in batches)

    def pending(self) -> int:
        """Events held in this process: buffered or in a flush under way."""
        with self._lock:
            return len(self._items) + sum(len(batch) for batch in self._processing.values())

    def dead_letter(self, items: list) -> None:
        with self._lock:
            self.dead.extend(items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._processing.clear()
            self.dead.clear()

    def __len__(self) -> int:
        return len(self._items)


memory_buffer = MemoryBuffer()
