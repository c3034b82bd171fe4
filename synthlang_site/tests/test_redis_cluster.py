"""Every Redis user that can take a Redis Cluster (REDIS_CLUSTER=true) on a three-node cluster
this module starts; Celery and Channels on a separate Redis, and a clear refusal at start-up
when they are not given one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from redis.cluster import RedisCluster

from billing import services as billing_services
from billing import usage
from billing.models import Price, UsageEvent
from common import redis as shared_redis
from common.testing import live_server
from synthlang_site.tests.redis_servers import (
    TLS_CLUSTER_PORTS,
    cluster_deployment,
    get_json,
    post_json,
)

pytestmark = [pytest.mark.live]


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    with cluster_deployment(tmp_path_factory.mktemp("cluster")) as deployment:
        yield deployment


def _separate_redis() -> str:
    """The run's own non-cluster Redis, for Celery and Channels."""
    if not django_settings.REDIS_URL or django_settings.REDIS_CLUSTER:
        pytest.skip("REDIS_URL (a Redis that is not a cluster) is needed for Celery and Channels")
    return django_settings.REDIS_URL


def _all_keys(client: RedisCluster) -> set[str]:
    return {key.decode() for key in client.keys(target_nodes=RedisCluster.ALL_NODES)}


@pytest.mark.django_db(transaction=True)
def test_the_proxy_uses_the_cluster_for_cache_limits_budgets_usage_and_throttles(
    redis_cluster, org_a, bob, bob_key, tmp_path, settings
):
    separate = _separate_redis()
    client = redis_cluster["client"]
    client.flushall(target_nodes=RedisCluster.ALL_NODES)
    Price.objects.create(
        model_pattern="gpt-4o-mini",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=150_000,
        output_per_mtok_micros=600_000,
    )
    # Three budgets over one reservation: one script call over three counters.
    billing_services.budget_set(organization=org_a, monthly_limit_micros=10**9, actor=None)
    billing_services.budget_set(
        organization=org_a, user=bob, monthly_limit_micros=10**9, actor=None
    )
    billing_services.budget_set(
        organization=org_a,
        api_key=bob.api_keys.get(),
        monthly_limit_micros=10**9,
        actor=None,
    )
    env = {
        "REDIS_URL": redis_cluster["url"],
        "REDIS_CLUSTER": "true",
        "CACHE_TYPE": "redis",
        "CELERY_BROKER_URL": separate,
        "CHANNELS_REDIS_URL": separate,
        "OPENAI_API_KEY": "",
        "BASIC_RPM": "3",
    }
    log = tmp_path / "server.log"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello, cluster!"}]}
    with live_server(env=env, log_path=log) as base:
        health = get_json(f"{base}/health")
        answers = [post_json(f"{base}/v1/chat/completions", bob_key, body) for _ in range(4)]
        wrong_key = post_json(f"{base}/v1/chat/completions", "sk-syn-not-a-key", body)
        time.sleep(0.5)  # the usage push trails the response by a batch delay
    assert health["components"]["cache"]["status"] == "ok", health
    assert health["components"]["broker"]["status"] == "ok", health
    # bob is basic with 3 requests a minute, counted by the script on the cluster.
    assert [status for status, _headers in answers] == [200, 200, 200, 429]
    assert answers[1][1].get("x-synthlang-cache") == "hit", answers[1][1].items()
    assert wrong_key[0] == 401
    keys = _all_keys(client)
    assert any(key.startswith(f"synthlang:rl:{{org:{org_a.pk}}}:") for key in keys), keys
    budget_keys = [key for key in keys if key.startswith("synthlang:billing:budget:{org:")]
    assert len(budget_keys) == 3, keys
    assert len({client.keyslot(key) for key in budget_keys}) == 1
    assert any(key.startswith("synthlang:cache:") for key in keys), keys
    assert any(key.startswith("synthlang:auth:key-failures:") for key in keys), keys
    # The keys are spread over the nodes, as a cluster's are.
    nodes = {client.get_node_from_key(key).port for key in keys}
    assert len(nodes) >= 2, nodes
    text = log.read_text()
    assert "buffering event in process" not in text
    assert "CROSSSLOT" not in text and "Traceback" not in text
    # The buffered usage is drained into the database: the claim script's keys share a slot.
    drained = UsageEvent.objects.filter(organization=org_a).count() + client.llen(
        "synthlang:billing:{usage}:buffer"
    )
    assert drained == 4
    _point_the_clients_at(settings, redis_cluster["url"])
    try:
        usage.usage_flush_run(redis=True)
    finally:
        shared_redis._sync_client = None
    assert UsageEvent.objects.filter(organization=org_a).count() == 4
    assert client.llen("synthlang:billing:{usage}:buffer") == 0


def _point_the_clients_at(settings, url: str) -> None:
    settings.REDIS_URL = url
    settings.REDIS_CLUSTER = True
    settings.CACHE_TYPE = "redis"
    shared_redis._sync_client = None


PROBE = """
import django
django.setup()
from django.core.cache import cache
cache.set_many({"a": 1, "b": 2, "c": 3}, timeout=60)
print(sorted(cache.get_many(["a", "b", "c", "missing"]).items()))
"""


def test_the_django_cache_reads_many_keys_across_slots(redis_cluster):
    separate = _separate_redis()
    env = {
        **os.environ,
        "DEBUG": "true",
        "LOG_FILE": "",
        "REDIS_URL": redis_cluster["url"],
        "REDIS_CLUSTER": "true",
        "CELERY_BROKER_URL": separate,
        "CHANNELS_REDIS_URL": separate,
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
    assert probe.stdout.strip().splitlines()[-1] == "[('a', 1), ('b', 2), ('c', 3)]"


TLS_PROBE = """
import asyncio, django
django.setup()
from django.conf import settings
from django.core.cache import cache
from accounts.selectors import Principal, RateLimit
from proxy import ratelimit

async def admit_twice():
    principal = Principal(
        key_id=1, key_prefix="sk-syn-tls", organization_id=1, organization_slug="tls",
        user_id=1, username="tls", role="basic", expires_at=None,
        key_limit=RateLimit(rpm=1, tpm=0),
    )
    await ratelimit.admit(principal, tokens=1)
    try:
        await ratelimit.admit(principal, tokens=1)
    except ratelimit.RateLimited:
        return "refused"
    return "admitted"

cache.set_many({"a": 1, "b": 2}, timeout=60)
print(sorted(cache.get_many(["a", "b"]).items()), asyncio.run(admit_twice()))
"""


def test_a_cluster_over_tls_with_a_self_signed_certificate_takes_the_setting(tmp_path):
    separate = _separate_redis()
    with cluster_deployment(tmp_path, ports=TLS_CLUSTER_PORTS, tls=True) as cluster:
        env = {
            **os.environ,
            "DEBUG": "true",
            "LOG_FILE": "",
            "REDIS_URL": cluster["url"],
            "REDIS_CLUSTER": "true",
            "REDIS_SSL_CERT_REQS": "none",
            "CELERY_BROKER_URL": separate,
            "CHANNELS_REDIS_URL": separate,
            "ENABLE_CACHE": "0",
        }
        probe = subprocess.run(
            [sys.executable, "-c", TLS_PROBE],
            cwd=django_settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        keys = _all_keys(cluster["client"])
    assert probe.returncode == 0, probe.stderr[-3000:]
    # The second admission was refused by the script: it ran on the cluster, over TLS.
    assert probe.stdout.strip().splitlines()[-1] == "[('a', 1), ('b', 2)] refused"
    assert any(key.startswith("synthlang:rl:{org:1}:") for key in keys), keys


def _start_up(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=django_settings.BASE_DIR,
        env={**os.environ, "DEBUG": "true", "LOG_FILE": "", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "env, named",
    [
        ({"CELERY_BROKER_URL": "", "CHANNELS_REDIS_URL": ""}, "CELERY_BROKER_URL"),
        (
            {"CELERY_BROKER_URL": "redis://127.0.0.1:7311/0", "CHANNELS_REDIS_URL": ""},
            "CELERY_BROKER_URL names the cluster",
        ),
        (
            {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/3", "CHANNELS_REDIS_URL": ""},
            "CHANNELS_REDIS_URL",
        ),
    ],
)
def test_a_cluster_without_a_separate_redis_for_celery_and_channels_fails_at_start(env, named):
    started = _start_up({"REDIS_URL": "redis://127.0.0.1:7311/0", "REDIS_CLUSTER": "true", **env})
    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr
    assert named in started.stderr
    assert "cannot use a Redis Cluster" in started.stderr


def test_a_cluster_has_only_database_zero():
    started = _start_up({"REDIS_URL": "redis://127.0.0.1:7311/2", "REDIS_CLUSTER": "true"})
    assert started.returncode != 0
    assert "a Cluster has only database 0" in started.stderr
