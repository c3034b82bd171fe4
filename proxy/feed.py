"""The live request feed's publishing side: one finished request -> the admin pages watching.

``feed_publish`` is called by ``gateway.finish`` with the usage event it just built.
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


async def feed_publish(event: dict) -> None:
    """Schedule the event's delivery to the feed and return immediately."""
    try:
        organization_id = event.get("organization_id")
        if organization_id is None or len(_in_flight) >= MAX_IN_FLIGHT:
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
