"""Outages on live server processes with every feature on (cache, compression, limits,
budgets): Redis killed and back, PostgreSQL stopped, both stopped and then SIGTERM.

Each test starts its own redis-server and, where PostgreSQL stops, its own cluster
(``common.testing``); the shared servers are never touched. No answer may be a 500, and
every answered request leaves exactly one usage row.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import openai
import psycopg
import pytest
from django.conf import settings

from accounts import services
from billing import services as billing_services
from billing.models import Price, UsageEvent
from common.testing import PostgresCluster, RedisServer, live_server_process

pytestmark = pytest.mark.live

MODEL = "gpt-4o-mini"
# Long enough that compression has something to do.
PROMPT = (
    "Please could you kindly tell me, in a very short answer, what the capital city of "
    "the country of France is, and basically why it is the capital?"
)


# Servers start slowly on a loaded machine: several at once, each loading its models.
STARTUP_SECONDS = 120.0


@contextlib.contextmanager
def _server(env: dict[str, str], log_path: Path):
    with live_server_process(env=env, log_path=log_path, startup_timeout=STARTUP_SECONDS) as (
        base_url,
        _process,
    ):
        yield base_url


def _features_on(redis: RedisServer, spool: Path, **extra: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis.url,
        "CACHE_TYPE": "redis",
        "ENABLE_CACHE": "1",
        "USE_SYNTHLANG": "1",
        "OPENAI_API_KEY": "",  # the offline fake provider answers
        "REDIS_RETRY_SECONDS": "1",
        "USAGE_SPOOL_DIR": str(spool),
        "USAGE_FLUSH_INTERVAL": "0.2",
        # The servers run with the suite's own setting: CI's second pass covers redis-py's
        # stock client, whose pool must notice both the outage and its end (decision 0018).
        "SYNTHLANG_FAST_PATHS": "true" if settings.SYNTHLANG_FAST_PATHS else "false",
        **extra,
    }


def _ask(base_url: str, key: str, question: str = PROMPT):
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30)
    return client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": question}], max_tokens=16
    )


def _health(base_url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_for(predicate, *, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# --- Redis killed and started again, on the test database --------------------------------


@pytest.mark.django_db(transaction=True)
def test_redis_killed_limits_hold_locally_or_refuse_and_the_cache_is_skipped(
    tmp_path, org_a, alice_key, bob
):
    """Two servers on one Redis of the test's own: ``local`` (per-process limits) and
    ``refuse`` (503). Killed, then started again: each comes back to Redis by itself."""
    limited, limited_key = services.api_key_create(
        organization=org_a, user=bob, rpm_limit=4, actor=None
    )
    billing_services.budget_set(organization=org_a, monthly_limit_micros=50_000_000)
    # A priced model (under a budget an unpriced one is refused); an earlier transactional
    # test may have emptied the seeded prices.
    Price.objects.get_or_create(
        model_pattern="gpt-4o-mini*",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        defaults={"input_per_mtok_micros": 150_000, "output_per_mtok_micros": 600_000},
    )
    redis = RedisServer()
    redis.start()
    try:
        spool = tmp_path / "spool"
        with (
            _server(
                _features_on(redis, spool, REDIS_OUTAGE_POLICY="local"), tmp_path / "local.log"
            ) as local_url,
            _server(
                _features_on(redis, spool, REDIS_OUTAGE_POLICY="refuse"), tmp_path / "refuse.log"
            ) as refuse_url,
        ):
            first = _ask(local_url, alice_key)
            again = _ask(local_url, alice_key)
            assert first.headers["x-synthlang-cache"] == "miss"
            assert again.headers["x-synthlang-cache"] == "hit"
            assert first.headers["x-synthlang-compression"] == "low"  # compression is on

            redis.stop()
            answers = [_ask(local_url, alice_key) for _ in range(3)]
            assert all(a.http_response.status_code == 200 for a in answers)
            # The cache is skipped, in both tiers, rather than answered from one process.
            assert {a.headers["x-synthlang-cache"] for a in answers} == {"off"}

            # ``local``: the key's 4 requests a minute are counted by the process itself.
            for _ in range(4):
                response = _ask(local_url, limited_key)
                assert response.headers["x-ratelimit-limit-requests"] == "4"
            with pytest.raises(openai.RateLimitError) as limited_out:
                _ask(local_url, limited_key)
            assert limited_out.value.status_code == 429

            # ``refuse``: what needs limits or a budget is a 503 the client may retry.
            with pytest.raises(openai.InternalServerError) as refused:
                _ask(refuse_url, limited_key)
            assert refused.value.status_code == 503
            assert refused.value.body["code"] == "service_unavailable"
            assert int(refused.value.response.headers["retry-after"]) >= 1

            status, body = _health(local_url)
            assert status == 200
            assert body["components"]["shared_state"]["status"] == "degraded"
            assert body["components"]["shared_state"]["policy"] == "local"
            assert str(redis.port) not in json.dumps(body)
            log = (tmp_path / "local.log").read_text()
            assert log.count("redis is unreachable") == 1  # reported once, not per request

            redis.start()

            def back_to_redis() -> bool:
                return _ask(local_url, alice_key).headers["x-synthlang-cache"] != "off"

            _wait_for(back_to_redis, timeout=30, what="the cache to come back with Redis")
            # The first call on a connection from before the restart may fail once more;
            # the next probe of Redis (REDIS_RETRY_SECONDS later) ends the outage.
            _wait_for(
                lambda: _health(local_url)[1]["components"]["shared_state"]["status"] == "ok",
                timeout=30,
                what="health to see Redis back",
            )
            # Back on the shared counter, the limit is Redis's again: a fresh window there.
            assert _ask(local_url, limited_key).http_response.status_code == 200

            # Answered during the outage: written by the server without the Redis buffer.
            answered = 3 + 4
            _wait_for(
                lambda: UsageEvent.objects.filter(status_code=200, cache="off").count() >= answered,
                what="the outage's usage rows",
            )
    finally:
        redis.stop()
    assert limited.pk


# --- PostgreSQL stopped, then both, then SIGTERM, on a cluster of the test's own ---------

# Run by manage.py shell against the cluster: a basic member (the role's default limits
# apply), an organization budget, and two keys: one the server will have seen, one not.
_SEED_SCRIPT = """
import json
from accounts import services
from billing import services as billing
org = services.organization_create(name="Acme", slug="acme")
ann, _ = services.user_get_or_create(username="ann", email="ann@example.com")
services.membership_set(organization=org, user=ann, role="basic", actor=None)
billing.budget_set(organization=org, monthly_limit_micros=50_000_000)
_, known = services.api_key_create(organization=org, user=ann, actor=None)
_, unknown = services.api_key_create(organization=org, user=ann, actor=None)
print(json.dumps({"known": known, "unknown": unknown}))
"""
# What the Celery task does: drain the Redis buffer into the database.
_DRAIN_SCRIPT = "from billing.usage import usage_flush_run; usage_flush_run(redis=True)"


def _manage(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return completed.stdout


def _rows(database_url: str) -> int:
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        (count,) = connection.execute(
            "SELECT count(*) FROM billing_usageevent WHERE status_code = 200"
        ).fetchone()
    return int(count)


@pytest.fixture
def cluster():
    directory = Path(tempfile.mkdtemp(prefix="synthlang-pg-"))
    pg = PostgresCluster(directory)
    pg.create()
    try:
        yield pg
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            pg.stop()  # unless the test left it stopped
        shutil.rmtree(directory, ignore_errors=True)


def test_postgres_stopped_then_both_then_sigterm_loses_no_usage(tmp_path, cluster):
    db_env = {"DATABASE_URL": cluster.url, "USE_SQLITE": "0"}
    _manage(db_env, "migrate", "-v0")
    seeded = _manage(db_env, "shell", "-c", _SEED_SCRIPT)
    keys = json.loads(seeded.strip().splitlines()[-1])
    known, unknown = keys["known"], keys["unknown"]

    redis = RedisServer()
    redis.start()
    spool = tmp_path / "spool"
    env = {
        **db_env,
        **_features_on(redis, spool),
        # The routes and budgets this process read stay usable through the outage.
        "ROUTE_CACHE_SECONDS": "600",
        "BUDGET_CACHE_SECONDS": "600",
        "PRICE_CACHE_SECONDS": "600",
    }
    try:
        with live_server_process(
            env=env, log_path=tmp_path / "first.log", startup_timeout=STARTUP_SECONDS
        ) as (base_url, server):
            assert _ask(base_url, known).http_response.status_code == 200

            # PostgreSQL stopped, Redis up.
            cluster.stop()
            answered = [_ask(base_url, known, f"{PROMPT} ({n})") for n in range(3)]
            assert all(a.http_response.status_code == 200 for a in answered)
            with pytest.raises(openai.InternalServerError) as unavailable:
                _ask(base_url, unknown)
            assert unavailable.value.status_code == 503
            assert unavailable.value.body["code"] == "service_unavailable"
            status, body = _health(base_url)
            assert status == 503 and body["components"]["database"]["status"] == "error"
            text = json.dumps(body)
            assert str(cluster.port) not in text and "127.0.0.1" not in text
            assert "error" not in body["components"]["database"]  # no exception text at all

            # PostgreSQL back; the Redis buffer kept those events: written as a worker would.
            cluster.start()
            _manage({**db_env, "REDIS_URL": redis.url}, "shell", "-c", _DRAIN_SCRIPT)
            before = _rows(cluster.url)
            assert before == 4

            # Redis killed (its buffer is empty now): usage is written by the server itself.
            redis.stop()
            answered = [_ask(base_url, known, f"{PROMPT} [{n}]") for n in range(2)]
            assert {a.headers["x-synthlang-cache"] for a in answered} == {"off"}
            _wait_for(lambda: _rows(cluster.url) == before + 2, what="direct usage writes")
            before += 2

            # Both down: 25 answered requests, then SIGTERM.
            cluster.stop()
            for n in range(25):
                response = _ask(base_url, known, f"{PROMPT} <{n}>")
                assert response.http_response.status_code == 200
            with pytest.raises(openai.InternalServerError) as still_unavailable:
                _ask(base_url, unknown)
            assert still_unavailable.value.status_code == 503
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=60) == 0  # a clean exit, not a kill

        spooled = {
            json.loads(line)["request_id"]
            for path in spool.glob("usage-*.jsonl")
            for line in path.read_text().splitlines()
        }
        assert len(spooled) == 25

        # Both back; a new process replays the spool at start-up.
        cluster.start()
        redis.start()
        with _server(env, tmp_path / "second.log"):
            _wait_for(lambda: _rows(cluster.url) == before + 25, what="the spool's replay")
            time.sleep(1.5)  # a later flush must not write them twice
            assert _rows(cluster.url) == before + 25
            assert not list(spool.glob("usage-*.jsonl"))
    finally:
        redis.stop()
