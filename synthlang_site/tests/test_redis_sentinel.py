"""Every Redis user through Redis Sentinel (``redis+sentinel://``), against a master, a replica
and a sentinel this module starts, and the rate limits' counts kept across a failover."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import redis
import redis.sentinel
from django.conf import settings as django_settings

from accounts.selectors import Principal, RateLimit
from billing import services as billing_services
from billing.models import Price
from common import redis as shared_redis
from common.testing import live_server
from proxy import ratelimit
from synthlang_site.tests.redis_servers import (
    MASTER_NAME,
    SENTINEL_PORTS,
    current_master_port,
    get_json,
    post_json,
    sentinel_deployment,
    wait_for_failover,
)

pytestmark = [pytest.mark.live]


@pytest.fixture(scope="module")
def sentinel_redis(tmp_path_factory):
    with sentinel_deployment(tmp_path_factory.mktemp("sentinel")) as deployment:
        yield deployment


def _master(deployment) -> redis.Redis:
    """The current master, as the sentinel names it (it moves on a failover)."""
    return redis.Redis(port=current_master_port(deployment["sentinel"]))


@pytest.mark.django_db(transaction=True)
def test_the_proxy_uses_sentinel_for_cache_limits_budgets_usage_and_throttles(
    sentinel_redis, org_a, bob, bob_key, tmp_path
):
    master = _master(sentinel_redis)
    master.flushdb()
    Price.objects.create(
        model_pattern="gpt-4o-mini",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=150_000,
        output_per_mtok_micros=600_000,
    )
    billing_services.budget_set(organization=org_a, monthly_limit_micros=10**9, actor=None)
    env = {
        "REDIS_URL": sentinel_redis["url"],
        "CACHE_TYPE": "redis",
        "CELERY_BROKER_URL": "",  # the broker is REDIS_URL's sentinel too
        "OPENAI_API_KEY": "",
        "BASIC_RPM": "3",
    }
    log = tmp_path / "server.log"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there!"}]}
    with live_server(env=env, log_path=log) as base:
        health = get_json(f"{base}/health")
        answers = [post_json(f"{base}/v1/chat/completions", bob_key, body) for _ in range(4)]
        wrong_key = post_json(f"{base}/v1/chat/completions", "sk-syn-not-a-key", body)
        time.sleep(0.5)  # the usage push trails the response by a batch delay
    assert health["components"]["cache"]["status"] == "ok", health
    assert health["components"]["broker"]["status"] == "ok", health
    assert health["components"]["broker"]["transport"] == "sentinel", health
    statuses = [status for status, _headers in answers]
    # bob is basic with 3 requests a minute, counted in the master: the fourth is refused.
    assert statuses == [200, 200, 200, 429]
    # The same question again: the response cache (in the master too) answers it.
    assert answers[1][1].get("x-synthlang-cache") == "hit", answers[1][1].items()
    assert wrong_key[0] == 401
    keys = {key.decode() for key in master.keys("*")}
    assert any(key.startswith(f"synthlang:rl:{{org:{org_a.pk}}}:") for key in keys), keys
    assert any(key.startswith("synthlang:billing:budget:{org:") for key in keys), keys
    assert any(key.startswith("synthlang:cache:") for key in keys), keys
    assert any(key.startswith("synthlang:auth:key-failures:") for key in keys), keys
    # Each answered request and the refusal left an event in the shared buffer (an unknown
    # key belongs to no organization: nothing to account).
    assert master.llen("synthlang:billing:usage:buffer") == 4
    assert "buffering event in process" not in log.read_text()


PROBE = """
import asyncio, json, os, django
django.setup()
from django.conf import settings
from django.core.cache import cache
from channels.layers import get_channel_layer
from synthlang_site.celery import app

async def main():
    layer = get_channel_layer()
    name = await layer.new_channel()
    await layer.send(name, {"type": "probe.message", "text": "through the sentinel"})
    message = await layer.receive(name)
    return message["text"]

channels_text = asyncio.run(main())
cache.set("sentinel-probe", {"n": 1}, timeout=60)
result = app.send_task("celery.accumulate", args=(4, 2), queue=os.environ["PROBE_QUEUE"])
print(json.dumps({
    "channels": channels_text,
    "cache": cache.get("sentinel-probe"),
    "celery": result.get(timeout=60),
    "broker": settings.CELERY_BROKER_URL,
    "master_name": settings.CELERY_BROKER_TRANSPORT_OPTIONS["master_name"],
}))
"""


def test_channels_the_django_cache_and_a_celery_worker_use_the_sentinel(sentinel_redis, tmp_path):
    result_url = sentinel_redis["url"].rsplit("/", 1)[0] + "/1"
    env = {
        **os.environ,
        "DEBUG": "true",
        "LOG_FILE": "",
        "REDIS_URL": sentinel_redis["url"],
        "CACHE_TYPE": "redis",
        # Set explicitly, as the variables Celery also reads by itself (ahead of settings).
        "CELERY_BROKER_URL": sentinel_redis["url"],
        "CELERY_RESULT_BACKEND": result_url,
        "ENABLE_CACHE": "0",
        "PROBE_QUEUE": "sentinel-probe",
    }
    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "synthlang_site", "worker", "--pool", "solo",
         "--queues", "sentinel-probe", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "-l", "info"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        probe = subprocess.run(
            [sys.executable, "-c", PROBE],
            cwd=django_settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        worker_log.close()
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    sentinel_port = SENTINEL_PORTS["sentinel"]
    assert result == {
        "channels": "through the sentinel",
        "cache": {"n": 1},
        "celery": [4, 2],
        "broker": f"sentinel://127.0.0.1:{sentinel_port}/0",
        "master_name": MASTER_NAME,
    }
    # The cache's value and the task's result went to the master the sentinel names.
    master = _master(sentinel_redis)
    assert any(b"sentinel-probe" in key for key in master.keys("*"))
    master.execute_command("SELECT", 1)
    assert any(key.startswith(b"celery-task-meta-") for key in master.keys("*"))


def _principal() -> Principal:
    return Principal(
        key_id=910_001,
        key_prefix="sk-syn-failover",
        organization_id=910_001,
        organization_slug="failover",
        user_id=910_001,
        username="failover",
        role="basic",
        expires_at=None,
        key_limit=RateLimit(rpm=10, tpm=0),
    )


def _remaining_after_admission(principal: Principal) -> str:
    async def admit():
        admission = await ratelimit.admit(principal, tokens=1)
        return admission.headers["x-ratelimit-remaining-requests"]

    return asyncio.run(admit())


def _sentinel_clients(settings, url: str) -> None:
    settings.REDIS_URL = url
    settings.REDIS_CLUSTER = False
    settings.CACHE_TYPE = "redis"
    shared_redis._sync_client = None
    shared_redis._async_clients.clear()


@pytest.fixture
def sentinel_settings(settings, sentinel_redis):
    _sentinel_clients(settings, sentinel_redis["url"])
    yield settings
    shared_redis._sync_client = None
    shared_redis._async_clients.clear()


@pytest.mark.parametrize("fast_paths", [True, False])
def test_a_failover_keeps_the_counts_and_the_clients_follow_the_new_master(
    sentinel_redis, sentinel_settings, fast_paths
):
    """Run last in the module: it moves the master to the other server (and the second
    parametrization moves it back)."""
    sentinel_settings.SYNTHLANG_FAST_PATHS = fast_paths
    principal = _principal()
    sentinel = sentinel_redis["sentinel"]
    before = current_master_port(sentinel)
    old_master = redis.Redis(port=before)
    for key in old_master.scan_iter(match="synthlang:rl:{org:910001}*"):
        old_master.delete(key)
    # With the fast paths on too, Sentinel goes through redis-py's client, which follows it.
    assert shared_redis.fast_client_in_use() is False
    for _ in range(2):
        _remaining_after_admission(principal)
    assert shared_redis.sync_redis().set("synthlang:test:sentinel", "before")
    assert old_master.wait(1, 15000) == 1  # the replica has every write

    sentinel.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
    after = wait_for_failover(sentinel, away_from=before)
    assert after != before

    # The first command may meet the demoted master and fail; the next finds the new one.
    _retry_until_it_succeeds(lambda: _remaining_after_admission(principal))
    _retry_until_it_succeeds(
        lambda: shared_redis.sync_redis().set("synthlang:test:sentinel", "after")
    )
    new_master = redis.Redis(port=after)
    assert new_master.info("replication")["role"] == "master"
    # The two admissions before the failover reached the new master (by replication) and
    # the one after it was counted there: three in all, whatever minute windows they fell in.
    counted = sum(
        int(new_master.get(key))
        for key in new_master.scan_iter(match="synthlang:rl:{org:910001}:key:910001:rpm:*")
    )
    assert counted == 3
    assert new_master.get("synthlang:test:sentinel") == b"after"


def _retry_until_it_succeeds(command):
    deadline = time.monotonic() + 30
    while True:
        try:
            return command()
        except (redis.exceptions.ConnectionError, redis.exceptions.ReadOnlyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
