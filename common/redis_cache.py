"""django-redis on a Redis Cluster.

django-redis has clients for one server, Sentinel and client-side sharding, but not for a
Cluster. Its connection factory is the one place a client is made, so a factory that
returns redis-py's ``RedisCluster`` gives the cache every cluster feature redis-py has: keys
routed to their slot's node, redirections followed, the topology refreshed on failover.
Commands over several keys that redis-py does not split by slot itself are the exception:
``MGET`` is, in ``get_many``, replaced by redis-py's slot-splitting ``mget_nonatomic``.
"""

from __future__ import annotations

from typing import Any

from django_redis.client.default import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from django_redis.pool import ConnectionFactory
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError


class ClusterConnectionFactory(ConnectionFactory):
    _clusters: dict[str, RedisCluster] = {}

    def connect(self, url: str) -> RedisCluster:
        # One client per URL and process, like django-redis's pools: a RedisCluster holds a
        # pool per node and the slot map, both worth keeping.
        client = self._clusters.get(url)
        if client is None:
            params = self.make_connection_params(url)
            params.pop("parser_class", None)
            client = RedisCluster.from_url(params.pop("url"), **params)
            self._clusters[url] = client
        return client

    def disconnect(self, connection: RedisCluster) -> None:
        connection.disconnect_connection_pools()


class ClusterClient(DefaultClient):
    def get_many(self, keys, version: int | None = None, client: Any = None) -> dict:
        if client is None:
            client = self.get_client(write=False)
        if not keys:
            return {}
        names = {self.make_key(key, version=version): key for key in keys}
        try:
            values = client.mget_nonatomic(list(names))
        except (RedisConnectionError, RedisTimeoutError, RedisClusterException) as error:
            raise ConnectionInterrupted(connection=client) from error
        return {
            names[name]: self.decode(value)
            for name, value in zip(names, values, strict=True)
            if value is not None
        }
