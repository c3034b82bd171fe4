"""Registries of objects bound to one event loop (Redis clients, HTTP sessions).

A loop is only ever closed at the end of a short-lived ``asyncio.run``/``async_to_sync``
(tests, Celery tasks). Its objects cannot be closed without it; they are dropped from their
registry the next time one is created, so neither the loop nor its sockets outlive it, and a
later loop that happens to get the same id never receives them.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping


def forget_closed_loops(
    registry: MutableMapping,
    on_forget: Callable | None = None,
    *,
    loop_of: Callable = lambda key: key,
) -> None:
    """Remove the entries whose loop (``loop_of(key)``) is closed, calling ``on_forget`` on
    each removed value."""
    for key in [key for key in registry if loop_of(key).is_closed()]:
        value = registry.pop(key)
        if on_forget is not None:
            on_forget(value)
