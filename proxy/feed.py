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

from common.local_state import local_state_register
from common.outages import ashared
from common.redis import KEY_PREFIX, async_redis, redis_enabled

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
_local_watch: dict[str, float] = {}  # the embedded default: group -> watched until
_watch_seen: dict[str, tuple[float, bool]] = {}  # per-process answer: checked at, watched


def _watch_forget() -> None:
    _local_watch.clear()
    _watch_seen.clear()


local_state_register("feed:watching", _watch_forget, redis_twin=False)


def _watch_key(group: str) -> str:
    return f"{KEY_PREFIX}feed:watching:{group}"


async def feed_watch(groups: set[str]) -> None:
    """Mark ``groups`` as watched for the next ``WATCH_SECONDS``."""
    if redis_enabled():
        pipe = async_redis().pipeline(transaction=False)
        for group in groups:
            pipe.set(_watch_key(group), 1, ex=WATCH_SECONDS)
        await pipe.execute()
    else:
        until = time.monotonic() + WATCH_SECONDS
        for group in groups:
            _local_watch[group] = until
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

        async def in_redis() -> list[bool]:
            # GETs in a pipeline, not MGET: on a Redis Cluster the groups' keys live in
            # different slots, which one MGET may not span.
            pipe = async_redis().pipeline(transaction=False)
            for group in stale:
                pipe.get(_watch_key(group))
            values = await pipe.execute()
            return [value is not None for value in values]

        # Redis down: nobody's page is known to watch (pages of this process excepted).
        answers, _local = await ashared(
            "feed",
            in_redis,
            lambda: [_local_watch.get(g, 0.0) > now for g in stale],
            enforces_limits=False,
        )
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
