"""Redis deployments the tests start and stop themselves: a Sentinel-watched master with a
replica, and a three-node Cluster, from the ``redis-server`` binary on fixed local ports."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
import redis.cluster

# One master, its replica and one sentinel; three cluster nodes, and three more over TLS.
SENTINEL_PORTS = {"master": 7301, "replica": 7302, "sentinel": 7303}
CLUSTER_PORTS = (7311, 7312, 7313)
TLS_CLUSTER_PORTS = (7321, 7322, 7323)
MASTER_NAME = "synthlang-primary"


def _wait_until(check, *, what: str, timeout: float = 20.0, processes=()):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited ({process.returncode}) before {what}")
        try:
            result = check()
            if result:
                return result
        except redis.exceptions.RedisError as error:
            last = error
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {timeout}s: {last}")


def _start(folder: Path, name: str, *arguments: str) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        ["redis-server", *arguments, "--bind", "127.0.0.1", "--dir", str(folder)],
        stdout=(folder / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _no_persistence() -> tuple[str, ...]:
    # A full resync waits repl-diskless-sync-delay (5 s by default) for more replicas to
    # join before it streams; here one replica is all there is.
    return ("--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0")


@contextlib.contextmanager
def sentinel_deployment(folder: Path):
    """Yields {"url", "sentinel", "master", "replica"}: a redis+sentinel:// URL and clients."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is needed")
    master_port, replica_port = SENTINEL_PORTS["master"], SENTINEL_PORTS["replica"]
    sentinel_port = SENTINEL_PORTS["sentinel"]
    processes = [
        _start(folder / "master", "master", "--port", str(master_port), *_no_persistence()),
        _start(
            folder / "replica",
            "replica",
            "--port",
            str(replica_port),
            "--replicaof",
            "127.0.0.1",
            str(master_port),
            *_no_persistence(),
        ),
    ]
    try:
        # A sentinel rewrites its configuration file as it learns: a file of its own.
        config = folder / "sentinel.conf"
        config.write_text(
            f"port {sentinel_port}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 5000\n"
        )
        processes.append(_start(folder, "sentinel", str(config), "--sentinel"))
        master = redis.Redis(port=master_port)
        replica = redis.Redis(port=replica_port)
        sentinel = redis.Redis(port=sentinel_port)
        _wait_until(
            lambda: replica.info("replication")["master_link_status"] == "up",
            what="the replica's sync",
            processes=processes,
        )
        _wait_until(
            lambda: sentinel.sentinel_master(MASTER_NAME)["num-slaves"] >= 1,
            what="the sentinel finding the replica",
            processes=processes,
        )
        yield {
            "url": f"redis+sentinel://127.0.0.1:{sentinel_port}/{MASTER_NAME}/0",
            "sentinel": sentinel,
            "master": master,
            "replica": replica,
        }
    finally:
        _stop(processes)


def current_master_port(sentinel: redis.Redis) -> int:
    return int(sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)[1])


def wait_for_failover(sentinel: redis.Redis, *, away_from: int) -> int:
    """Waits until the sentinel names another master and the old one serves as its replica,
    synced (until then the old one still takes writes, which its resync will drop, and a
    WAIT on the new master counts no replica); the new port."""
    port = _wait_until(
        lambda: (port := current_master_port(sentinel)) != away_from and port,
        what="the failover",
        timeout=30,
    )
    old = redis.Redis(port=away_from, decode_responses=True)
    _wait_until(
        lambda: old.info("replication")["role"] == "slave",
        what="the old master's demotion",
        timeout=30,
    )
    _wait_until(
        lambda: old.info("replication").get("master_link_status") == "up",
        what="the demoted master's sync with the new one",
        timeout=30,
    )
    # The sentinel refuses the next failover (NOGOODSLAVE) until its own view of the
    # replica, refreshed from INFO every few seconds, says the link is up.
    _wait_until(
        lambda: any(
            int(replica["port"]) == away_from
            and replica.get("master-link-status") == "ok"
            and not replica.get("is_sdown")
            and not replica.get("is_disconnected")
            for replica in sentinel.sentinel_slaves(MASTER_NAME)
        ),
        what="the sentinel seeing the demoted master as a synced replica",
        timeout=30,
    )
    return port


def _cluster_ok(port: int, client_tls: dict) -> bool:
    node = redis.Redis(port=port, decode_responses=True, **client_tls)
    info = node.execute_command("CLUSTER INFO")
    if isinstance(info, dict):
        return info.get("cluster_state") == "ok"
    return "cluster_state:ok" in info


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no authority signed, and its key."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def cluster_deployment(folder: Path, *, ports=CLUSTER_PORTS, tls: bool = False):
    """Yields {"url", "client"}: a URL to one node of a three-master cluster, and a client.
    With ``tls``, the nodes speak only TLS (to clients and to each other), with a
    self-signed certificate."""
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        pytest.skip("redis-server and redis-cli are needed")
    tls_arguments: tuple[str, ...] = ()
    cli_tls: list[str] = []
    client_tls: dict = {}
    if tls:
        cert, key = self_signed_certificate(folder / "tls")
        tls_arguments = (
            "--tls-cluster", "yes", "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
        )  # fmt: skip
        cli_tls = ["--tls", "--insecure"]
        client_tls = {"ssl": True, "ssl_cert_reqs": "none"}
    processes = [
        _start(
            folder / str(port),
            str(port),
            *(("--port", "0", "--tls-port", str(port)) if tls else ("--port", str(port))),
            *tls_arguments,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            *_no_persistence(),
        )
        for port in ports
    ]
    try:
        for port in ports:
            _wait_until(
                redis.Redis(port=port, **client_tls).ping,
                what=f"node {port}",
                processes=processes,
            )
        subprocess.run(
            ["redis-cli", *cli_tls, "--cluster", "create"]
            + [f"127.0.0.1:{port}" for port in ports]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        _wait_until(
            lambda: all(_cluster_ok(port, client_tls) for port in ports),
            what="the cluster's agreement",
            processes=processes,
        )
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=ports[0], **client_tls)
        scheme = "rediss" if tls else "redis"
        yield {"url": f"{scheme}://127.0.0.1:{ports[0]}/0", "client": client}
        client.close()
    finally:
        _stop(processes)


def post_json(url: str, key: str, body: dict):
    """POST ``body`` with the proxy key; the status and headers, whatever the status."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


def get_json(url: str) -> dict:
    """The JSON body of a GET, whatever the status (/health answers 503 with a body)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())
