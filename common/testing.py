"""Test support shared by the apps: real server processes on the test database."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_env() -> dict[str, str]:
    """Environment that points a child process at the database this test run uses."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        if str(db["NAME"]).startswith(("file:", ":memory:")) or db["NAME"] == "":
            raise RuntimeError("live-server tests need a file-backed SQLite test database")
        return {"USE_SQLITE": "1", "SQLITE_PATH": str(db["NAME"]), "DATABASE_URL": ""}
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return {
        "DATABASE_URL": f"postgresql://{user}{password}@{host}:{port}/{db['NAME']}",
        "USE_SQLITE": "0",
    }


def wait_for_http(url: str, *, timeout: float = 30.0, process=None) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - localhost
                response.read()
                return
        except urllib.error.HTTPError:
            return  # it answered, whatever the status
        except OSError as exc:
            last_error = exc
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last_error}")


@contextmanager
def live_server(*, env: dict[str, str] | None = None, log_path: Path | None = None):
    """Start ``python -m synthlang_site`` on a free port; yields its base URL."""
    with live_server_process(env=env, log_path=log_path) as (base_url, _process):
        yield base_url


@contextmanager
def live_server_process(
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    startup_timeout: float = 30.0,
):
    """``live_server`` that also yields the process (to signal it)."""
    port = free_port()
    child_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "AUTO_MIGRATE": "0",
        "SECURE_SSL_REDIRECT": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "ENCRYPTION_KEY": ",".join(settings.ENCRYPTION_KEYS),
        "API_KEY_PEPPER": settings.API_KEY_PEPPER,
        "PYTHONUNBUFFERED": "1",
        # A server process writes its own usage events, as in production.
        "USAGE_FLUSH_IN_BACKGROUND": "true",
        **test_database_env(),
        **(env or {}),
    }
    output = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "synthlang_site"],
        cwd=BASE_DIR,
        env=child_env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base_url}/health", process=process, timeout=startup_timeout)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            output.close()


@contextmanager
def http_server_thread(handler_class):
    """A stdlib HTTP server on a free port of 127.0.0.1, in a thread, for the block; its
    ``received`` list is where a handler may keep the requests it got."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler_class)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def write_sse(wfile, events) -> None:
    """Chat-completion chunks as an upstream streams them: one ``data:`` line each, then
    ``[DONE]``."""
    for event in events:
        wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
    wfile.write(b"data: [DONE]\n\n")


# --- Servers a test starts, stops and starts again (outage tests) --------------------------


def _port_range() -> range | None:
    """``TEST_SERVER_PORTS=7100-7199`` keeps the servers a test starts in a given range (a
    shared machine); by default the system picks free ports."""
    spec = os.environ.get("TEST_SERVER_PORTS", "")
    if not spec:
        return None
    low, _, high = spec.partition("-")
    return range(int(low), int(high or low) + 1)


def free_server_port() -> int:
    ports = _port_range()
    if ports is None:
        return free_port()
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in TEST_SERVER_PORTS={os.environ['TEST_SERVER_PORTS']}")


def _wait_for_port(port: int, *, up: bool, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            answered = sock.connect_ex(("127.0.0.1", port)) == 0
        if answered == up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not {'open' if up else 'close'} within {timeout}s")


class RedisServer:
    """A redis-server of the test's own (never the shared one), without persistence."""

    def __init__(self) -> None:
        self.port = free_server_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, up=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as a crash would: nothing is saved
            self.process.wait()
        _wait_for_port(self.port, up=False)


class PostgresCluster:
    """A PostgreSQL cluster of the test's own (initdb + pg_ctl), to stop and start again."""

    BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_server_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/synthlang"

    def _run(self, *args: str) -> None:
        command = [str(self.BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root.
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)  # noqa: S603

    def create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "synthlang"
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        _wait_for_port(self.port, up=False)
