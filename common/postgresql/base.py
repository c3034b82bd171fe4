"""Django's PostgreSQL backend, with a pool that does not make requests wait on a database
that is down.

psycopg's pool lends a connection it has, or waits up to its timeout (``DB_POOL_TIMEOUT``)
for one it is trying to open, even when every attempt is refused at once: with the
database down, each request would hang for the whole timeout before its 503. So when the
pool has no idle connection and either never opened one or failed to open one since this
process last looked, one direct connection attempt (bounded by ``connect_timeout``) tells
whether the database answers, and its error is raised at once if not. While the database
is up and the pool opens its connections, nothing extra happens per request.
"""

from __future__ import annotations

import threading

import psycopg
from django.db.backends.postgresql import base

_lock = threading.Lock()
_failures_seen = 0  # the pool's connection errors already answered by a probe


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        global _failures_seen
        pool = self.pool
        if pool is not None:
            stats = pool.get_stats()
            failures = stats.get("connections_errors", 0)
            never_connected = stats.get("connections_num", 0) == 0
            if stats.get("pool_available", 0) == 0 and (
                never_connected or failures > _failures_seen
            ):
                probe = {key: value for key, value in conn_params.items() if key != "pool"}
                # Raises psycopg.OperationalError (Django wraps it) when nobody answers;
                # the next request probes again until one gets through.
                psycopg.connect(**probe).close()
                with _lock:
                    _failures_seen = max(_failures_seen, failures)
        return super().get_new_connection(conn_params)
