"""SYNTHLANG_FAST_PATHS: one setting chooses between the hand-written fast paths and the stock
libraries, for the Redis client, the server's HTTP layer and the API's ASGI handler."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

from accounts.selectors import Principal, RateLimit
from common import redis as shared_redis
from common import redis_writes
from proxy import ratelimit

needs_redis = pytest.mark.skipif(
    not django_settings.REDIS_URL,
    reason="REDIS_URL is not set: the Redis clients need a real Redis (CI sets it)",
)


def _principal(organization_id: int) -> Principal:
    return Principal(
        key_id=organization_id,
        key_prefix="sk-syn-test",
        organization_id=organization_id,
        organization_slug="switch",
        user_id=organization_id,
        username="switch",
        role="basic",
        expires_at=None,
        key_limit=RateLimit(rpm=5, tpm=1000),
    )


def _admit_and_settle_in_a_fresh_loop(principal: Principal):
    """Admit twice and settle once on a new event loop; what each loop-bound client holds."""

    async def scenario():
        loop = asyncio.get_running_loop()
        first = await ratelimit.admit(principal, tokens=10)
        second = await ratelimit.admit(principal, tokens=10)
        await ratelimit.settle_tokens(first, actual_tokens=12)
        stock = shared_redis._async_clients.get(loop)
        stock_connections = (
            0 if stock is None else sum(n for n, _ in stock.connection_pool.get_connection_count())
        )
        return {
            "remaining": (
                first.headers["x-ratelimit-remaining-requests"],
                second.headers["x-ratelimit-remaining-requests"],
            ),
            "pipelined": loop in shared_redis._pipelined,
            "batcher": loop in redis_writes._batchers,
            "stock_connections": stock_connections,
        }

    return asyncio.run(scenario())


@needs_redis
@pytest.mark.parametrize("fast", [True, False])
def test_the_switch_chooses_which_redis_client_counts_rate_limits(settings, fast):
    settings.SYNTHLANG_FAST_PATHS = fast
    settings.CACHE_TYPE = "redis"
    principal = _principal(organization_id=900_001 if fast else 900_002)
    client = shared_redis.sync_redis()
    for key in client.scan_iter(match=f"{shared_redis.KEY_PREFIX}rl:{{org:{principal.key_id}}}*"):
        client.delete(key)

    outcome = _admit_and_settle_in_a_fresh_loop(principal)

    # The same answers either way: the two admissions were counted in Redis.
    assert outcome["remaining"] == ("4", "3")
    if fast:
        assert outcome["pipelined"] and outcome["batcher"]
        assert outcome["stock_connections"] == 0
    else:
        # Nothing hand-written was made for the loop; redis-py's pool carried the commands.
        assert not outcome["pipelined"] and not outcome["batcher"]
        assert outcome["stock_connections"] >= 1


def test_the_fast_client_is_not_used_for_sentinel_or_cluster(settings):
    settings.SYNTHLANG_FAST_PATHS = True
    settings.REDIS_URL = "redis+sentinel://127.0.0.1:7399/primary/0"
    settings.REDIS_CLUSTER = False
    assert shared_redis.fast_client_in_use() is False
    settings.REDIS_URL = "redis://127.0.0.1:7398/0"
    settings.REDIS_CLUSTER = True
    assert shared_redis.fast_client_in_use() is False
    settings.REDIS_CLUSTER = False
    assert shared_redis.fast_client_in_use() is True


# Imports the ASGI application the way Daphne does (with Twisted's HTTP server and Daphne
# loaded first) and reports which code serves a request.
PROBE = """
import json
import daphne.access
import daphne.http_protocol
import twisted.web.http
import synthlang_site.asgi as asgi
from daphne.access import AccessLogGenerator
from daphne.http_protocol import HTTPFactory, WebRequest
http_router = asgi.application.application_mapping["http"]
# Under the request-context middleware (access line, request id), the tracing middleware
# and the MCP mount is the path router.
while not hasattr(http_router, "api"):
    http_router = http_router.application
print(json.dumps({
    "content_type_parser": getattr(
        twisted.web.http._parseContentType, "synthlang_fast_path", False
    ),
    "quiet_access_log": getattr(HTTPFactory.log, "synthlang_quiet", False),
    "prompt_flush": getattr(WebRequest.handle_reply, "synthlang_flush", False),
    "no_plain_access_log": getattr(AccessLogGenerator.__call__, "synthlang_silenced", False),
    "joined_headers": getattr(
        twisted.web.http.HTTPChannel.writeHeaders, "synthlang_joined", False
    ),
    "api_handler": type(http_router.api).__module__ + "." + type(http_router.api).__name__,
}))
"""


@pytest.mark.parametrize("fast", [True, False])
def test_the_switch_chooses_the_server_code_that_serves_requests(fast):
    env = {
        **os.environ,
        "DEBUG": "true",
        "LOG_FILE": "",
        # Without the cache's warm-up thread, which can abort an interpreter that exits while
        # it is inside the embedding runtime (see test_asgi_startup).
        "ENABLE_CACHE": "0",
        "SYNTHLANG_FAST_PATHS": "true" if fast else "false",
    }
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    served_by = json.loads(probe.stdout.strip().splitlines()[-1])
    if fast:
        assert served_by == {
            "content_type_parser": True,
            "quiet_access_log": True,
            "prompt_flush": True,
            "no_plain_access_log": True,
            "joined_headers": True,
            "api_handler": "synthlang_site.api_handler.ApiASGIHandler",
        }
    else:
        assert served_by == {
            "content_type_parser": False,
            "quiet_access_log": False,
            "prompt_flush": False,
            "no_plain_access_log": False,
            "joined_headers": False,
            "api_handler": "django.core.handlers.asgi.ASGIHandler",
        }
