"""Database access from async code without serialising every request on one thread."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


def _with_fresh_connection(fn: Callable[..., T], *args, **kwargs) -> T:
    # Pool threads live outside Django's request cycle, so nothing else would ever
    # retire their connections when they age out or break (e.g. a database restart).
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run_in_db_thread(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run ``fn`` on a pool thread.

    Django's own async ORM uses ``thread_sensitive=True``: one thread for all
    queries of the process, which would queue every concurrent proxy request
    behind the others. The proxy's queries are independent, so they may run in
    parallel on the default executor.
    """
    call = functools.partial(_with_fresh_connection, fn, *args, **kwargs)
    return await sync_to_async(call, thread_sensitive=False)()
