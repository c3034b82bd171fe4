"""Test support shared by the apps: real server processes on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
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
        wait_for_http(f"{base_url}/health", process=process)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log_path:
            output.close()
