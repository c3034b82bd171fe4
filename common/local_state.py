"""This process's own state: the in-memory twins of what Redis shares, and caches of reads.

Each module that keeps such state registers, where it defines it, how to forget it. Tests
forget all of it between tests with one call (instead of a list to keep in step by hand),
and the end of a Redis outage forgets the twins that counted while it lasted: their counts
are this process's view of the outage, not Redis's.
"""

from __future__ import annotations

from collections.abc import Callable

# name -> (forget, whether it is a twin of state Redis holds)
_registered: dict[str, tuple[Callable[[], None], bool]] = {}


def local_state_register(name: str, forget: Callable[[], None], *, redis_twin: bool) -> None:
    _registered[name] = (forget, redis_twin)


def local_state_forget(*, redis_twins_only: bool = False) -> None:
    for forget, redis_twin in list(_registered.values()):
        if redis_twin or not redis_twins_only:
            forget()


def local_state_names() -> list[str]:
    return sorted(_registered)
