"""The cache's writes that run after the answer (database copy, counters, restoring)."""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)

# Held until done: the event loop keeps only weak references to its tasks.
_background: set[asyncio.Task] = set()


def _in_background(coroutine) -> None:
    task = asyncio.ensure_future(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _swallow(coroutine, what: str) -> None:
    try:
        await coroutine
    except Exception:
        logger.exception("%s failed", what)
