"""Which Redis deployment a URL names: one server, a Sentinel-watched master, or a Cluster.

Every Redis user (the Django cache, the proxy's own clients, Celery, Channels) is configured
from the one ``REDIS_URL``; this module reads it once into a ``RedisTarget`` they all build
their clients from. It imports nothing from Django, so settings can use it.

Sentinel URLs name the sentinels and the master they watch::

    redis+sentinel://[[user]:password@]host:26379[,host2:26379...]/master-name[/db]

(``sentinel://`` is accepted too.) The user and password are the master's; a
``sentinel_password`` (and ``sentinel_username``) query parameter authenticates to the
sentinels when they ask for it. A Cluster is a plain ``redis://`` or ``rediss://`` URL to any
one of its nodes, with ``REDIS_CLUSTER=true``; the client discovers the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

SENTINEL_SCHEMES = ("redis+sentinel", "sentinel")
SENTINEL_DEFAULT_PORT = 26379


class RedisUrlError(ValueError):
    """The URL cannot name a Redis deployment; the message says what is expected."""


@dataclass(frozen=True)
class RedisTarget:
    kind: str  # "single", "sentinel" or "cluster"
    url: str  # single and cluster: the URL itself; sentinel: as given
    master_name: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_kwargs: dict = field(default_factory=dict)

    @property
    def is_sentinel(self) -> bool:
        return self.kind == "sentinel"

    @property
    def is_cluster(self) -> bool:
        return self.kind == "cluster"

    def master_kwargs(self) -> dict:
        """Connection options for the master a sentinel names (redis-py's names)."""
        options: dict = {"db": self.db}
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = self.password
        return options


def is_sentinel_url(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def redis_target(url: str, *, cluster: bool = False) -> RedisTarget:
    """Read ``url`` (and the cluster flag) into a RedisTarget, or raise RedisUrlError."""
    parts = urlsplit(url)
    if parts.scheme in SENTINEL_SCHEMES:
        if cluster:
            raise RedisUrlError("a Sentinel URL cannot also be a Cluster (REDIS_CLUSTER)")
        return _sentinel_target(url, parts)
    if cluster:
        if parts.scheme not in ("redis", "rediss"):
            raise RedisUrlError("a Cluster needs a redis:// or rediss:// URL to one of its nodes")
        db = parts.path.strip("/")
        if db not in ("", "0"):
            raise RedisUrlError(f"a Cluster has only database 0, not {db}")
        return RedisTarget(kind="cluster", url=url)
    return RedisTarget(kind="single", url=url)


def _sentinel_target(url: str, parts) -> RedisTarget:
    # urlsplit cannot read "host1:1,host2:2" as one netloc's port: split it by hand.
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for address in filter(None, hosts.split(",")):
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        host = host.strip("[]")
        try:
            sentinels.append((host, int(port) if port else SENTINEL_DEFAULT_PORT))
        except ValueError:
            raise RedisUrlError(f"{address!r} is not host:port") from None
    if not sentinels:
        raise RedisUrlError("a Sentinel URL names at least one sentinel, host:port")
    path = [unquote(piece) for piece in parts.path.split("/") if piece]
    if not path or len(path) > 2:
        raise RedisUrlError("a Sentinel URL's path is /master-name or /master-name/db")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise RedisUrlError(f"{path[1]!r} is not a database number") from None
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    sentinel_kwargs = {}
    if query.get("sentinel_password"):
        sentinel_kwargs["password"] = query["sentinel_password"]
    if query.get("sentinel_username"):
        sentinel_kwargs["username"] = query["sentinel_username"]
    return RedisTarget(
        kind="sentinel",
        url=url,
        master_name=path[0],
        sentinels=tuple(sentinels),
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_kwargs=sentinel_kwargs,
    )


def celery_sentinel_url(target: RedisTarget) -> str:
    """Kombu's form for the same sentinels: ``sentinel://[:pw@]h:p/db;sentinel://...``;
    the master name goes in the transport options (``celery_sentinel_options``)."""
    credentials = ""
    if target.password:
        credentials = f"{target.username or ''}:{target.password}@"
    # Kombu reads the credentials and database from the first URL and the sentinels'
    # addresses from all of them; each carries everything, whichever is read.
    return ";".join(
        f"sentinel://{credentials}{host}:{port}/{target.db}" for host, port in target.sentinels
    )


def celery_sentinel_options(target: RedisTarget) -> dict:
    options: dict = {"master_name": target.master_name}
    if target.sentinel_kwargs:
        options["sentinel_kwargs"] = dict(target.sentinel_kwargs)
    return options


def channels_host(target: RedisTarget) -> dict | str:
    """channels-redis's ``hosts`` entry for the same deployment."""
    if not target.is_sentinel:
        return target.url
    host: dict = {
        "sentinels": list(target.sentinels),
        "master_name": target.master_name,
        **target.master_kwargs(),
    }
    if target.sentinel_kwargs:
        host["sentinel_kwargs"] = dict(target.sentinel_kwargs)
    return host
