"""The live request feed's publishing side: one finished request -> the admin pages watching.

``feed_publish`` is called by ``accounting.finish`` with the usage event it just built.
It returns at once: the send runs as a background task, bounded in time and in the
number in flight, and every error is swallowed. The feed is a convenience for people
watching a page; it must never slow down, fail or hold up a proxied request.

Groups: ``feed.org.<organization id>`` for that organization's admins, and
``feed.platform`` for platform staff (see ``proxy.consumers.FeedConsumer``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.layers import get_channel_layer
from django.core.signals import setting_changed
from django.dispatch import receiver

from common.local_state import local_state_register
from common.outages import ashared, redis_configured
from common.redis import KEY_PREFIX, async_redis

logger = logging.getLogger(__name__)

PLATFORM_GROUP = "feed.platform"
SEND_TIMEOUT_SECONDS = 2.0
# Under a slow or unreachable channel layer, drop feed events rather than let tasks
# (and the memory they hold) pile up behind it.
MAX_IN_FLIGHT = 1000
_WARN_EVERY_SECONDS = 60.0

# What a watcher sees of a request: no user, key or prompt content.
FEED_FIELDS = (
    "request_id",
    "created_at",
    "organization_id",
    "endpoint",
    "model",
    "status_code",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "stream",
    "cache",
    "tokens_saved",
    "latency_ms",
    "overhead_ms",
)

_in_flight: set[asyncio.Task] = set()
_last_warning_at = 0.0


def organization_group(organization_id: int) -> str:
    return f"feed.org.{int(organization_id)}"


def feed_message(event: dict) -> dict:
    """The channel-layer message for a usage event (``type`` names the consumer handler)."""
    return {"type": "feed.request", "event": {name: event.get(name) for name in FEED_FIELDS}}


def _warn(error: BaseException) -> None:
    # A channel layer that is down would otherwise log once per proxied request.
    global _last_warning_at
    now = time.monotonic()
    if now - _last_warning_at >= _WARN_EVERY_SECONDS:
        _last_warning_at = now
        logger.warning("live feed publish failed: %r", error)


async def _send(organization_id: int, message: dict) -> None:
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
            await layer.group_send(organization_group(organization_id), message)
            await layer.group_send(PLATFORM_GROUP, message)
    except Exception as error:  # the feed must never surface an error to the proxy
        _warn(error)


# --- Who is watching ------------------------------------------------------------------
# Sending to a group costs channel-layer round trips even when nobody is in it, and most
# of the time nobody is: an open feed page marks its groups as watched (at connect and
# on each heartbeat), and publishing skips groups that no page has marked recently.
WATCH_SECONDS = 90
WATCH_CHECK_SECONDS = 2.0
_watch_seen: dict[str, tuple[float, bool]] = {}  # per-process answer: checked at, watched


class MemoryWatching:
    """The embedded default: the pages of this process (the only one there is)."""

    def __init__(self) -> None:
        self.until: dict[str, float] = {}  # group -> watched until (monotonic)

    def mark_here(self, groups: set[str]) -> None:
        until = time.monotonic() + WATCH_SECONDS
        for group in groups:
            self.until[group] = until

    def watched_here(self, groups: list[str]) -> list[bool]:
        now = time.monotonic()
        return [self.until.get(group, 0.0) > now for group in groups]

    async def mark(self, groups: set[str]) -> None:
        self.mark_here(groups)

    async def watched(self, groups: list[str]) -> list[bool]:
        return self.watched_here(groups)


class RedisWatching:
    """The pages of every instance, as keys in Redis that expire; its failure policy is
    here alone: with Redis unreachable the twin answers with this process's own pages,
    and a page's mark is never an error for the page."""

    def __init__(self) -> None:
        self.twin = MemoryWatching()

    async def mark(self, groups: set[str]) -> None:
        # Kept here too, so that this process's pages still count during an outage.
        self.twin.mark_here(groups)

        async def in_redis() -> None:
            pipe = async_redis().pipeline(transaction=False)
            for group in groups:
                pipe.set(_watch_key(group), 1, ex=WATCH_SECONDS)
            await pipe.execute()

        await ashared("feed", in_redis, lambda: None, enforces_limits=False)

    async def watched(self, groups: list[str]) -> list[bool]:
        async def in_redis() -> list[bool]:
            # GETs in a pipeline, not MGET: on a Redis Cluster the groups' keys live in
            # different slots, which one MGET may not span.
            pipe = async_redis().pipeline(transaction=False)
            for group in groups:
                pipe.get(_watch_key(group))
            values = await pipe.execute()
            return [value is not None for value in values]

        answers, _local = await ashared(
            "feed", in_redis, lambda: self.twin.watched_here(groups), enforces_limits=False
        )
        return answers


_backend: MemoryWatching | RedisWatching | None = None


def watching() -> MemoryWatching | RedisWatching:
    """The backend, chosen on first use from the settings (again after they change)."""
    global _backend
    if _backend is None:
        _backend = RedisWatching() if redis_configured() else MemoryWatching()
    return _backend


def _watch_forget() -> None:
    global _backend
    _backend = None
    _watch_seen.clear()


local_state_register("feed:watching", _watch_forget, redis_twin=False)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **_kwargs) -> None:
    if setting in ("CACHE_TYPE", "REDIS_URL"):
        _watch_forget()


def _watch_key(group: str) -> str:
    return f"{KEY_PREFIX}feed:watching:{group}"


async def feed_watch(groups: set[str]) -> None:
    """Mark ``groups`` as watched for the next ``WATCH_SECONDS``."""
    await watching().mark(groups)
    for group in groups:
        _watch_seen.pop(group, None)  # this process notices at once


async def _watched(groups: tuple[str, ...]) -> bool:
    now = time.monotonic()
    stale = [
        g
        for g in groups
        if now - _watch_seen.get(g, (-WATCH_CHECK_SECONDS, False))[0] >= WATCH_CHECK_SECONDS
    ]
    if stale:
        answers = await watching().watched(stale)
        for group, watched in zip(stale, answers, strict=True):
            _watch_seen[group] = (now, watched)
    return any(_watch_seen[g][1] for g in groups)


async def feed_publish(event: dict) -> None:
    """Schedule the event's delivery to the feed and return immediately."""
    try:
        organization_id = event.get("organization_id")
        if len(_in_flight) >= MAX_IN_FLIGHT:
            # Sends whose event loop has closed (a test's, a worker's) will never finish.
            _in_flight.difference_update(
                [task for task in _in_flight if task.get_loop().is_closed()]
            )
        if organization_id is None or len(_in_flight) >= MAX_IN_FLIGHT:
            return
        if not await _watched((organization_group(int(organization_id)), PLATFORM_GROUP)):
            return
        task = asyncio.get_running_loop().create_task(
            _send(int(organization_id), feed_message(event))
        )
        _in_flight.add(task)
        task.add_done_callback(_in_flight.discard)
    except Exception as error:
        _warn(error)


async def feed_drain() -> None:
    """Wait for the sends in flight (tests, and a clean shutdown)."""
    while _in_flight:
        await asyncio.gather(*list(_in_flight), return_exceptions=True)
