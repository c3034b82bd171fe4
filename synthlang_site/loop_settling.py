"""The request's work after its answer, on the start paths whose event loop does not
outlive the request: the Lambda handler (Mangum's loop is suspended between invocations)
and Django's WSGI handler (each async view, and an async stream's relay, run in an event
loop of their own that cancels whatever is still running when it ends).

The proxy answers first and accounts after (the usage event and its write, the cache's
store, the rate limits' settling run in tasks the answer leaves behind). On those paths
the tasks would wait for a next request that may never come, or be cancelled: the usage
would be lost, against the contract. They are awaited before the loop stops instead.
"""

from __future__ import annotations

import asyncio
import functools
import time

from asgiref.sync import iscoroutinefunction
from django.core.handlers.wsgi import WSGIHandler

# At most this long; a task that never ends (none should) costs one answer this much.
SETTLE_SECONDS = 10.0


async def loop_settled(timeout: float = SETTLE_SECONDS) -> None:
    """Wait for every other task of the running loop to end, and for those they start."""
    deadline = time.monotonic() + timeout
    current = asyncio.current_task()
    while True:
        pending = {task for task in asyncio.all_tasks() if task is not current}
        left = deadline - time.monotonic()
        if not pending or left <= 0:
            return
        await asyncio.wait(pending, timeout=left)


def loop_run_settled(loop: asyncio.AbstractEventLoop) -> None:
    """``loop_settled`` for a loop that is not running (Mangum's, between invocations)."""
    if asyncio.all_tasks(loop):
        loop.run_until_complete(loop_settled())


class SettlingWSGIHandler(WSGIHandler):
    """Django's WSGI handler, each async view's loop left only once the view's work after
    its answer is done.

    An async stream is relayed to its end inside the view's loop too. Django would iterate
    it later in a loop of its own, where the upstream's connection, opened in the view's
    ended loop, no longer reads: the client got the first chunk and ``[DONE]``, and the
    stream's accounting was cancelled. WSGI servers buffer such a stream anyway (Django
    gathers an async iterator into a list before the first byte), so nothing is lost."""

    def make_view_atomic(self, view):
        view = super().make_view_atomic(view)
        if not iscoroutinefunction(view):
            return view

        @functools.wraps(view)
        async def view_then_settle(request, *args, **kwargs):
            response = await view(request, *args, **kwargs)
            if getattr(response, "is_async", False):
                response.streaming_content = [chunk async for chunk in response.streaming_content]
            await loop_settled()
            return response

        return view_then_settle
