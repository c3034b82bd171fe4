"""A per-process TTL cache whose concurrent misses share one load.

The hot path caches what it reads from the database for a few seconds. When an
entry expires under load, every request in flight would otherwise miss at once and
queue the same query dozens of times (a thundering herd); here the first miss loads
and the others wait for its result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from time import monotonic
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, *, max_entries: int = 10_000):
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._inflight: dict[Hashable, asyncio.Future] = {}

    def get_fresh(self, key: Hashable) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > monotonic():
            return True, entry[1]
        return False, None

    def get_stale(self, key: Hashable, *, max_age: float) -> tuple[bool, V | None]:
        """An entry expired no more than ``max_age`` seconds ago (or still fresh): what
        a caller may serve when the source it reloads from is unreachable."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] + max_age > monotonic():
            return True, entry[1]
        return False, None

    def put(self, key: Hashable, value: V, *, ttl: float) -> None:
        if len(self._entries) >= self.max_entries:
            # Bounded memory whatever the keys (clients can invent model names).
            self._entries.clear()
        self._entries[key] = (monotonic() + ttl, value)

    def clear(self) -> None:
        self._entries.clear()

    async def get_or_load(
        self,
        key: Hashable,
        load: Callable[[], Awaitable[V]],
        *,
        ttl: float | Callable[[V], float],
    ) -> V:
        """The cached value, or ``load()``'s, kept for ``ttl`` seconds (or for what
        ``ttl`` says for that value: a partial result may deserve a shorter stay)."""
        fresh, value = self.get_fresh(key)
        if fresh:
            return value  # type: ignore[return-value]
        pending = self._inflight.get(key)
        if pending is not None and pending.get_loop() is asyncio.get_running_loop():
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        # Nobody may be waiting when a load fails; mark its exception as retrieved.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._inflight[key] = future
        try:
            value = await load()
            seconds = ttl(value) if callable(ttl) else ttl
        except BaseException as error:
            future.set_exception(error)
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        self.put(key, value, ttl=seconds)
        future.set_result(value)
        return value
