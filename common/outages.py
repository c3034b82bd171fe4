"""What the proxy does when Redis or the database is gone: one place for every policy.

Redis holds the shared state (rate-limit and budget counters, alert flags, the usage
buffer, the cache's shared tier). When it stops answering:

| component                      | policy                                                    |
|--------------------------------|-----------------------------------------------------------|
| rate limits, budgets, flags    | ``REDIS_OUTAGE_POLICY``: ``local`` (counters in this      |
|                                | process, seeded as without Redis) or ``refuse`` (503)     |
| response cache (both tiers)    | skipped: the request goes upstream, nothing is stored     |
| usage buffer                   | this process's buffer, written to the database directly   |
| failed-key throttle, live feed | this process's counters / no feed                         |

The outage is noticed once (a WARNING, the ``synthlang_component_up`` gauge, ``/health``),
not once per request: while Redis is down it is not called at all, except for one probe
every ``REDIS_RETRY_SECONDS``, and the first call that succeeds ends the outage.

The database's errors are never turned into silent success here: a request that needs it
gets a 503 (``service_unavailable``) in OpenAI's format; usage that cannot be written is
spooled to disk (``billing.spool``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from prometheus_client import Counter, Gauge

from common.errors import ServiceUnavailable
from common.local_state import local_state_forget, local_state_register

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What an unreachable or failing server raises (redis-py, the pipelined client, sockets).
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    ConnectionError,
    TimeoutError,
    OSError,
)
# A database that cannot be reached or is shutting down; not a constraint violation.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)

COMPONENT_UP = Gauge(
    "synthlang_component_up",
    "1 while the component answers, 0 during an outage this process noticed.",
    ["component"],
)
OUTAGE_FALLBACKS = Counter(
    "synthlang_outage_fallbacks_total",
    "Operations served by their outage policy instead of the shared component.",
    ["component", "action"],
)


def redis_outage_policy() -> str:
    return getattr(settings, "REDIS_OUTAGE_POLICY", "local")


def _retry_seconds() -> float:
    return float(getattr(settings, "REDIS_RETRY_SECONDS", 5.0))


class ComponentOutage:
    """The state of one shared component as this process has seen it.

    ``usable()`` is False during an outage, except once every retry interval: that call
    is the probe whose success (``succeeded``) ends the outage.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.last_error = ""
        self._next_probe_at = 0.0
        # When the last failure was seen: a call that began before it and succeeds after it
        # (a reply already on its way when the server went) says nothing about the end.
        self._failed_at = float("-inf")
        self.outages = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def usable(self) -> bool:
        if self.down_since is None:
            return True
        now = time.monotonic()
        with self._lock:
            if self.down_since is None:
                return True
            if now < self._next_probe_at:
                return False
            # This caller probes; the others keep to the policy until it reports back.
            self._next_probe_at = now + _retry_seconds()
            return True

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self._failed_at = time.monotonic()
            self._next_probe_at = self._failed_at + _retry_seconds()
            # The error's class only: its text may carry a host, port or password.
            self.last_error = type(error).__name__
            if self.down_since is not None:
                return
            self.down_since = time.time()
            self.outages += 1
        COMPONENT_UP.labels(component=self.name).set(0)
        logger.warning(
            "%s is unreachable (%s); serving by the outage policy until it answers again",
            self.name,
            type(error).__name__,
        )

    def succeeded(self, started_at: float | None = None) -> None:
        """A call answered. ``started_at`` (``time.monotonic()`` when it was sent): a call
        sent before the last failure does not end the outage. With several connections
        (redis-py's pool) replies sent just before a server stopped arrive after another
        call has already failed; ending the outage on them reset the local counters
        while Redis was still gone."""
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            if started_at is not None and started_at <= self._failed_at:
                return
            lasted = time.time() - self.down_since
            self.down_since = None
            self.last_error = ""
        COMPONENT_UP.labels(component=self.name).set(1)
        logger.warning("%s answers again after %.1f s", self.name, lasted)
        local_state_forget(redis_twins_only=True)

    def reset(self) -> None:
        with self._lock:
            self.down_since = None
            self.last_error = ""
            self._next_probe_at = 0.0
            self._failed_at = float("-inf")
        COMPONENT_UP.labels(component=self.name).set(1)

    def state(self) -> dict:
        """For ``/health``: never the host, port or the exception's text."""
        if self.down_since is None:
            return {"status": "ok", "policy": redis_outage_policy()}
        return {
            "status": "degraded",
            "policy": redis_outage_policy(),
            "down_for_seconds": round(time.time() - self.down_since, 1),
            "error": self.last_error,
        }


redis_outage = ComponentOutage("redis")
local_state_register("outage:redis", redis_outage.reset, redis_twin=False)


def redis_configured() -> bool:
    """Whether shared state lives in Redis at all (the one predicate for it)."""
    return getattr(settings, "CACHE_TYPE", "memory") == "redis" and bool(
        getattr(settings, "REDIS_URL", "")
    )


def redis_usable() -> bool:
    """Redis is configured and not in a noticed outage (or this call is the probe)."""
    return redis_configured() and redis_outage.usable()


def refusal(component: str) -> ServiceUnavailable:
    seconds = max(int(_retry_seconds() + 0.999), 1)
    return ServiceUnavailable(
        f"The {component} service is temporarily unavailable. Please retry in {seconds} seconds.",
        headers={"retry-after": str(seconds)},
    )


def _fallback(component: str, local: Callable[[], T], *, enforces_limits: bool) -> T:
    if enforces_limits and redis_outage_policy() == "refuse":
        OUTAGE_FALLBACKS.labels(component=component, action="refused").inc()
        raise refusal("rate limit and budget")
    OUTAGE_FALLBACKS.labels(component=component, action="local").inc()
    return local()


async def ashared(
    component: str,
    remote: Callable[[], Awaitable[T]],
    local: Callable[[], T],
    *,
    enforces_limits: bool = True,
) -> tuple[T, bool]:
    """``remote()`` in Redis, or ``local()`` by the outage policy; and whether it was local.

    ``enforces_limits``: the refuse policy applies (limits, budgets). Without it the local
    twin always serves (settling a count, a throttle).
    """
    if redis_usable():
        started_at = time.monotonic()
        try:
            result = await remote()
        except REDIS_ERRORS as error:
            redis_outage.failed(error)
        else:
            redis_outage.succeeded(started_at)
            return result, False
    elif not redis_configured():
        return local(), True
    return _fallback(component, local, enforces_limits=enforces_limits), True


def shared(
    component: str,
    remote: Callable[[], T],
    local: Callable[[], T],
    *,
    enforces_limits: bool = True,
) -> tuple[T, bool]:
    """``ashared`` for code outside the event loop."""
    if redis_usable():
        started_at = time.monotonic()
        try:
            result = remote()
        except REDIS_ERRORS as error:
            redis_outage.failed(error)
        else:
            redis_outage.succeeded(started_at)
            return result, False
    elif not redis_configured():
        return local(), True
    return _fallback(component, local, enforces_limits=enforces_limits), True


# redis-py's own classes only: a bare OSError that reaches a view may come from anywhere.
_REDIS_CLIENT_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


def is_outage_error(error: BaseException) -> bool:
    """An unreachable Redis or database, as opposed to a bug."""
    if isinstance(error, DATABASE_ERRORS):
        return True
    if isinstance(error, DatabaseError):
        return False  # integrity and data errors are bugs or bad input, not outages
    return isinstance(error, _REDIS_CLIENT_ERRORS)


def unavailable_for(error: BaseException) -> ServiceUnavailable:
    """The client's 503 for an outage error that reached a view."""
    if isinstance(error, DATABASE_ERRORS):
        return refusal("database")
    redis_outage.failed(error)
    return refusal("shared state")
