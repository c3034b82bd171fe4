"""Reading REDIS_URL into the deployment it names, and each library's form of it."""

from __future__ import annotations

import pytest

from common.redis_target import (
    RedisUrlError,
    celery_sentinel_options,
    celery_sentinel_url,
    channels_host,
    redis_target,
)


def test_a_plain_url_is_one_server():
    target = redis_target("rediss://:secret@cache.example.com:6380/2?ssl_cert_reqs=none")
    assert target.kind == "single"
    assert target.url == "rediss://:secret@cache.example.com:6380/2?ssl_cert_reqs=none"
    assert channels_host(target) == target.url


def test_a_sentinel_url_names_its_sentinels_master_database_and_credentials():
    target = redis_target(
        "redis+sentinel://app:p%40ss@10.0.0.1:26379,10.0.0.2,[::1]:26380/primary/3"
        "?sentinel_password=watch"
    )
    assert target.kind == "sentinel"
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert target.master_name == "primary"
    assert target.db == 3
    assert target.master_kwargs() == {"db": 3, "username": "app", "password": "p@ss"}
    assert target.sentinel_kwargs == {"password": "watch"}


def test_celery_and_channels_get_the_same_sentinels_in_their_own_forms():
    target = redis_target("sentinel://:pw@s1:26379,s2:26380/primary/1")
    assert celery_sentinel_url(target) == "sentinel://:pw@s1:26379/1;sentinel://:pw@s2:26380/1"
    assert celery_sentinel_options(target) == {"master_name": "primary"}
    assert channels_host(target) == {
        "sentinels": [("s1", 26379), ("s2", 26380)],
        "master_name": "primary",
        "db": 1,
        "password": "pw",
    }


def test_a_cluster_is_a_node_url_with_the_flag():
    target = redis_target("redis://node-1:7000", cluster=True)
    assert target.kind == "cluster"
    assert redis_target("redis://node-1:7000/0", cluster=True).is_cluster


@pytest.mark.parametrize(
    "url, cluster, message",
    [
        ("redis+sentinel:///primary", False, "at least one sentinel"),
        ("redis+sentinel://s1:26379", False, "/master-name"),
        ("redis+sentinel://s1:26379/primary/0/extra", False, "/master-name"),
        ("redis+sentinel://s1:port/primary", False, "is not host:port"),
        ("redis+sentinel://s1:26379/primary/zero", False, "not a database number"),
        ("redis://node-1:7000/3", True, "only database 0"),
        ("unix:///tmp/redis.sock", True, "redis:// or rediss://"),
        ("redis+sentinel://s1:26379/primary", True, "cannot also be a Cluster"),
    ],
)
def test_a_url_that_names_no_deployment_is_refused_with_what_is_expected(url, cluster, message):
    with pytest.raises(RedisUrlError, match=message):
        redis_target(url, cluster=cluster)
