"""The number of database connections is bounded, whatever the load.

Under ASGI, Django's persistent connections belong to the threads of the async-to-sync
bridge, which come and go with the load: with ``CONN_MAX_AGE`` above 0 every new thread
kept a connection of its own until PostgreSQL ran out. The pool (docs/decisions, the
database connections record) caps them per process.
"""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp
import psycopg
import pytest
from django.db import connection

from common.testing import live_server

pytestmark = pytest.mark.live

POOL_MAX_SIZE = 6
CONCURRENT_CALLS = 1000


class PeakConnections:
    """Polls pg_stat_activity for the test database from its own connection."""

    def __init__(self) -> None:
        settings = connection.settings_dict
        self.database = settings["NAME"]
        self.dsn = (
            f"host={settings.get('HOST') or '127.0.0.1'} port={settings.get('PORT') or 5432} "
            f"user={settings.get('USER') or 'postgres'} dbname={self.database}"
        )
        if settings.get("PASSWORD"):
            self.dsn += f" password={settings['PASSWORD']}"
        self.peak = 0
        # Before the server starts: this test process's own connections and the probe's.
        self.baseline: int | None = None
        self._started = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as probe:
            while not self._stop.is_set():
                (count,) = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.database]
                ).fetchone()
                if self.baseline is None:
                    self.baseline = count
                    self._started.set()
                self.peak = max(self.peak, count)
                time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        self._started.wait(timeout=10)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)


async def _load(base_url: str, key: str, calls: int) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=timeout
    ) as session:

        async def one(index: int) -> int:
            if index % 2:
                request = session.get(f"{base_url}/api/keys/", headers=headers)
            else:
                request = session.post(
                    f"{base_url}/v1/chat/completions",
                    json=chat,
                    headers={**headers, "x-synthlang-cache": "off"},
                )
            async with request as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one(index) for index in range(calls))))


def test_a_thousand_concurrent_management_and_proxy_calls_hold_the_connection_count(
    transactional_db, alice_key, tmp_path
):
    if connection.vendor != "postgresql":
        pytest.skip("connection counting needs PostgreSQL's pg_stat_activity")
    env = {
        "DB_POOL_MAX_SIZE": str(POOL_MAX_SIZE),
        # Every proxy call looks its key up in the database, not in the process's cache.
        "API_KEY_CACHE_SECONDS": "0",
        "OPENAI_API_KEY": "",
    }
    with (
        PeakConnections() as peak,
        live_server(env=env, log_path=tmp_path / "server.log") as base_url,
    ):
        statuses = asyncio.run(_load(base_url, alice_key, CONCURRENT_CALLS))
    assert statuses.count(200) == CONCURRENT_CALLS, sorted(set(statuses))
    server_connections = peak.peak - peak.baseline
    print(f"the server's peak connections under {CONCURRENT_CALLS} calls: {server_connections}")
    assert server_connections <= POOL_MAX_SIZE
