"""Read replicas (``DATABASE_REPLICA_URLS``): lag-tolerant reads go to a replica, the rest
to the primary.

A streaming replica is a few hundred milliseconds (or, under load, seconds) behind the
primary, so a read may go to one only when being that far behind is harmless. Nothing goes
there by default. A read is sent to a replica only when all of these hold:

- it runs inside a lag-tolerant scope: a request to a view named in
  ``DATABASE_REPLICA_VIEWS`` (the dashboard, admin list pages, the usage API and reports),
  by GET or HEAD, or code wrapped in ``replica_reads()`` (selectors that tolerate lag);
- nothing was written in that scope yet (but to the models below), and no transaction is
  open on the primary: a read that follows a write in the same request sees that write;
- its model is not one whose reads decide who the caller is or what they may do (sessions,
  users, memberships, API keys, permissions; ``PRIMARY_ONLY``): a user who just signed in,
  or a key just revoked, must never be judged by a replica's older copy;
- a replica is healthy: one that refused a connection, failed its check or failed a query
  is skipped for ``DATABASE_REPLICA_COOLDOWN_SECONDS``. A lag-tolerant view whose replica
  fails mid-request is run again on the primary, so its caller gets an answer, not a 500.

Writes and migrations always go to the primary (docs/decisions/0016-read-replicas.md).
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import functools
import logging
import random
import threading
import time
import weakref
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)

REPLICA_PREFIX = "replica_"
# How long a connection's "SELECT 1" check is trusted; a query failing meanwhile is still
# caught (the view is retried on the primary).
CHECK_SECONDS = 5.0
# Reads that must see the latest committed state: identity, authorization and sessions.
PRIMARY_ONLY = frozenset(
    {
        "sessions",
        "auth",
        "contenttypes",
        "admin",
        "accounts.user",
        "accounts.organization",
        "accounts.membership",
        "accounts.apikey",
        "accounts.providercredential",
    }
)


@dataclass
class _Scope:
    tolerant: bool = False
    wrote: bool = False
    alias: str | None = None  # the replica this scope reads from, once chosen


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar(
    "synthlang_replica_scope", default=None
)
_down_until: dict[str, float] = {}
_down_lock = threading.Lock()
_checked_at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def replica_aliases() -> list[str]:
    return [alias for alias in settings.DATABASES if alias.startswith(REPLICA_PREFIX)]


def mark_down(alias: str, reason: object) -> None:
    cooldown = float(getattr(settings, "DATABASE_REPLICA_COOLDOWN_SECONDS", 30.0))
    with _down_lock:
        _down_until[alias] = time.monotonic() + cooldown
    logger.warning("read replica %s skipped for %.0f s: %s", alias, cooldown, reason)
    with contextlib.suppress(DatabaseError):
        connections[alias].close()


def replicas_forget_health() -> None:
    """Forget every cool-down (tests)."""
    with _down_lock:
        _down_until.clear()


def _usable(alias: str) -> bool:
    if _down_until.get(alias, 0.0) > time.monotonic():
        return False
    connection = connections[alias]
    try:
        if connection.connection is None:
            connection.ensure_connection()  # bounded by the replica's connect_timeout
            _checked_at[connection] = time.monotonic()
        elif time.monotonic() - _checked_at.get(connection, 0.0) > CHECK_SECONDS:
            if not connection.is_usable():
                raise OperationalError("the connection failed its check")
            _checked_at[connection] = time.monotonic()
    except (OperationalError, InterfaceError) as error:
        mark_down(alias, error)
        return False
    return True


def _primary_only(model) -> bool:
    meta = model._meta
    return meta.app_label in PRIMARY_ONLY or meta.label_lower in PRIMARY_ONLY


class ReplicaRouter:
    """Django's database router for the rules above."""

    def db_for_read(self, model, **hints):
        scope = _scope.get()
        if scope is None or not scope.tolerant or scope.wrote or _primary_only(model):
            return None
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return None
        if scope.alias is not None and _usable(scope.alias):
            return scope.alias
        healthy = [alias for alias in replica_aliases() if _usable(alias)]
        scope.alias = random.choice(healthy) if healthy else None
        return scope.alias  # None: the primary

    def db_for_write(self, model, **hints):
        scope = _scope.get()
        # Writes to the primary-only models (a key's last use, a session) cannot be read
        # back stale: those reads never leave the primary.
        if scope is not None and not _primary_only(model):
            scope.wrote = True
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # Every alias holds the same data: objects read from a replica may refer to the
        # primary's and the other way round.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS


class replica_reads:
    """A lag-tolerant scope for code outside a request: a context manager or decorator.

    As a decorator, a replica that fails during the call marks itself down and the call
    runs once more on the primary (use it on functions that only read).
    """

    def __enter__(self):
        self._token = _scope.set(_Scope(tolerant=True))
        return self

    def __exit__(self, *exc_info) -> None:
        _scope.reset(self._token)

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            scope = _Scope(tolerant=True)
            token = _scope.set(scope)
            try:
                return function(*args, **kwargs)
            except (OperationalError, InterfaceError) as error:
                if scope.alias is None:
                    raise
                mark_down(scope.alias, error)
                scope.tolerant, scope.alias = False, None
                return function(*args, **kwargs)
            finally:
                _scope.reset(token)

        return wrapper


def lag_tolerant_view(resolver_match) -> bool:
    """Is this view named in DATABASE_REPLICA_VIEWS (``namespace:url_name`` patterns)?"""
    if resolver_match is None or not resolver_match.url_name:
        return False
    name = resolver_match.view_name  # "admin:billing_usageevent_changelist"
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in settings.DATABASE_REPLICA_VIEWS)


class ReplicaReadsMiddleware:
    """Opens a scope per request; the views named in DATABASE_REPLICA_VIEWS read from a
    replica when asked by GET or HEAD, and are run again on the primary if it fails."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _scope.set(_Scope())
        try:
            return self.get_response(request)
        finally:
            _scope.reset(token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        scope = _scope.get()
        if scope is not None and request.method in ("GET", "HEAD"):
            scope.tolerant = lag_tolerant_view(request.resolver_match)
        request.synthlang_view = (view_func, view_args, view_kwargs)
        return None

    def process_exception(self, request, exception):
        scope = _scope.get()
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        if scope is None or scope.alias is None or getattr(request, "synthlang_view", None) is None:
            return None
        mark_down(scope.alias, exception)
        scope.tolerant, scope.alias = False, None
        view_func, view_args, view_kwargs = request.synthlang_view
        request.synthlang_view = None  # once
        response = view_func(request, *view_args, **view_kwargs)
        render = getattr(response, "render", None)
        if callable(render) and not getattr(response, "is_rendered", True):
            response = render()
        return response
