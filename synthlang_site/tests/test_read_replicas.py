"""Read replicas against a real streaming replica.

The test starts its own PostgreSQL primary (initdb into a temporary directory, on a free
port) and a hot standby made from it with ``pg_basebackup -R``, runs the proxy on them
(DATABASE_URL = primary, DATABASE_REPLICA_URLS = standby), and pauses the standby's replay
to see which reads went where: a lag-tolerant read (the usage API) shows the standby's older
state, a read after one's own write (a key just created, then used) shows the primary's. The
standby is then stopped, and the proxy goes on answering from the primary.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from common.testing import free_port
from synthlang_site.tests.test_graceful_shutdown import server_process

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

DATABASE = "synthlang_replica_test"


def _postgres_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


class Cluster:
    def __init__(self, bin_dir: Path, data: Path, port: int, socket_dir: Path):
        self.bin_dir, self.data, self.port, self.socket_dir = bin_dir, data, port, socket_dir

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def sql(self, statement: str, database: str = DATABASE):
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="module")
def primary_and_replica():
    bin_dir = _postgres_bin()
    if bin_dir is None or (os.geteuid() == 0 and not shutil.which("runuser")):
        pytest.skip("PostgreSQL server binaries are not installed")
    root = Path(tempfile.mkdtemp(prefix="synthlang-replicas-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    primary = Cluster(bin_dir, root / "primary", free_port(), root)
    replica = Cluster(bin_dir, root / "replica", free_port(), root)
    started: list[Cluster] = []
    try:
        primary.run("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust", "-E",
                    "UTF8", "--no-sync")  # fmt: skip
        with open(primary.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {primary.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nfsync = off\nwal_level = replica\n"
                "max_wal_senders = 4\nhot_standby = on\n"
            )
        primary.start()
        started.append(primary)
        primary.sql(f"CREATE DATABASE {DATABASE}", database="postgres")
        replica.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                    "-D", str(replica.data), "-R", "-X", "stream", "--no-sync",
                    "--checkpoint=fast")  # fmt: skip
        with open(replica.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {replica.port}\n")
        replica.start()
        started.append(replica)
        assert replica.sql("SELECT pg_is_in_recovery()") == [(True,)]
        yield primary, replica
    finally:
        for cluster in reversed(started):
            with contextlib.suppress(subprocess.CalledProcessError):  # stopped by the test
                cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _call(method: str, url: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _wait_for(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_lag_tolerant_reads_go_to_the_replica_and_own_writes_are_read_from_the_primary(
    primary_and_replica, tmp_path
):
    primary, replica = primary_and_replica
    env = {
        "DEBUG": "true",
        "LOG_FILE": "",
        "USE_SQLITE": "0",
        "DATABASE_URL": primary.url(),
        "DATABASE_REPLICA_URLS": replica.url(),
        "DATABASE_REPLICA_COOLDOWN_SECONDS": "60",
        "REDIS_URL": "",
        "CACHE_TYPE": "memory",
        "CELERY_BROKER_URL": "",
    }
    _manage(env, "migrate", "--noinput", "-v", "0")
    key = _manage(env, "create_api_key", "--org", "replica-org", "--user", "ada", "--role",
                  "admin").strip().splitlines()[-1]  # fmt: skip
    log = tmp_path / "server-1.log"
    with server_process(tmp_path, workers=1, extra_env=env) as (_process, port):
        base = f"http://127.0.0.1:{port}"

        def usage_requests(api_key: str = key) -> int:
            status, body = _call("GET", f"{base}/api/usage?group_by=model", api_key)
            assert status == 200, body
            return body["totals"]["requests"]

        def primary_requests() -> int:
            rows = primary.sql("SELECT coalesce(sum(requests), 0) FROM billing_dailyusagerollup")
            return int(rows[0][0])

        assert usage_requests() == 0
        replica.sql("SELECT pg_wal_replay_pause()")
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
        assert _call("POST", f"{base}/v1/chat/completions", key, chat)[0] == 200
        _wait_for(lambda: primary_requests() == 1, "the usage row on the primary")

        # The usage API may lag: it answers from the paused replica.
        assert usage_requests() == 0
        # A key created now is read back, and authenticates, at once: from the primary.
        status, created = _call("POST", f"{base}/api/keys/", key, {"name": "fresh"})
        assert status == 201, created
        status, listed = _call("GET", f"{base}/api/keys/", key)
        assert "fresh" in {item["name"] for item in listed["data"]}
        assert usage_requests(created["key"]) == 0  # its organization's usage, lagging

        replica.sql("SELECT pg_wal_replay_resume()")
        _wait_for(lambda: usage_requests() == 1, "the replica to catch up")

        # The replica goes away: lag-tolerant reads fall back to the primary.
        replica.stop()
        assert _call("POST", f"{base}/v1/chat/completions", key, chat)[0] == 200
        _wait_for(lambda: primary_requests() == 2, "the second usage row on the primary")
        assert usage_requests() == 2
        assert usage_requests() == 2  # and again, within the cool-down
    text = log.read_text()
    assert "read replica replica_1 skipped" in text
    assert '"level": "ERROR"' not in text
    replica.start()  # for the fixture's teardown


@pytest.mark.parametrize(
    ("path", "tolerant"),
    [
        ("/admin/", True),
        ("/admin/billing/usageevent/", True),  # a list page
        ("/admin/billing/dailyusagerollup/dashboard/", True),
        ("/api/usage", True),
        ("/admin/billing/usageevent/1/change/", False),  # an edit page reads what it writes
        ("/admin/accounts/apikey/add/", False),
        ("/api/keys/", False),
        ("/v1/models", False),
    ],
)
def test_the_lag_tolerant_views_are_the_dashboard_list_pages_and_usage(path, tolerant):
    from django.urls import resolve

    from common.db_replicas import lag_tolerant_view

    assert lag_tolerant_view(resolve(path)) is tolerant


def test_reads_that_decide_who_the_caller_is_never_leave_the_primary():
    from django.contrib.sessions.models import Session

    from accounts.models import ApiKey, AuditLogEntry, Membership, User
    from billing.models import DailyUsageRollup
    from common.db_replicas import ReplicaRouter, replica_reads

    router = ReplicaRouter()
    with replica_reads():
        for model in (Session, User, Membership, ApiKey):
            assert router.db_for_read(model) is None, model
        # Lag-tolerant models would go to a replica, but this test database has none.
        assert router.db_for_read(DailyUsageRollup) is None
        assert router.db_for_read(AuditLogEntry) is None
    assert router.allow_migrate("replica_1", "billing") is False
    assert router.allow_migrate("default", "billing") is True
