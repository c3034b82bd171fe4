"""Start-up of the servers the benchmarks measure: the fake upstream and SynthLang Proxy.

Every endpoint benchmark needs the same two processes: ``proxy.fake_upstream`` answering
like OpenAI, and a production-mode proxy (DEBUG off, migrated, one premium key with
generous limits) whose default provider is that upstream. Both are async context
managers that wait until the server answers and stop it on the way out, whatever
happened in between:

    workdir = bench_workdir("messages")
    async with (
        fake_upstream(workdir) as upstream_url,
        synthlang_proxy(workdir, upstream_url=upstream_url, ENABLE_CACHE="0") as proxy,
    ):
        ...  # proxy.url, proxy.key

Ports come from the operating system, or from ``BENCH_PORTS`` (``7400-7499``) on a machine
where each user keeps to a range.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent

# Ports handed out by this process and not yet bound by the server they were meant for:
# without it two calls in a row would pick the same free port.
_ports_handed_out: set[int] = set()


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on: the first free one of ``BENCH_PORTS`` when it is set."""
    wanted = os.environ.get("BENCH_PORTS", "")
    if not wanted:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    low, _, high = wanted.partition("-")
    for port in range(int(low), int(high or low) + 1):
        if port not in _ports_handed_out and _port_is_free(port):
            _ports_handed_out.add(port)
            return port
    raise RuntimeError(f"no free port left in BENCH_PORTS={wanted}")


def bench_workdir(name: str) -> Path:
    """A fresh directory for one run's logs and SQLite database."""
    return Path(tempfile.mkdtemp(prefix=f"synthlang-{name}-bench-"))


def bench_environment(**extra: str) -> dict:
    """This process's environment, with the servers' output unbuffered for their logs."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


async def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
    raise TimeoutError(url)


def start(cmd: list[str], env: dict, log: Path, *, cwd: Path = ROOT) -> subprocess.Popen:
    handle = open(log, "wb")  # noqa: SIM115 - closed when the process is reaped
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM (a SynthLang supervisor drains its workers), then wait for the exit."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def proxy_environment(
    base_env: dict, *, workdir: Path, proxy_port: int, upstream_url: str, **overrides: str
) -> dict:
    """A production-mode proxy (DEBUG off) whose default provider is the fake upstream."""
    env = {
        **base_env,
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + "s" * 50,
        "ENCRYPTION_KEY": "YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtYmU=",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "LOG_FILE": "",
        "HOST": "127.0.0.1",
        "PORT": str(proxy_port),
        "AUTO_MIGRATE": "0",
        "OPENAI_API_KEY": "sk-bench-upstream",
        "OPENAI_BASE_URL": f"{upstream_url}/v1",
        **overrides,
    }
    if not os.environ.get("DATABASE_URL"):
        env["SQLITE_PATH"] = str(workdir / "bench.db")
    return env


def migrate(env: dict, *, cwd: Path = ROOT) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=cwd,
        env=env,
        check=True,
    )


def manage_shell(script: str, env: dict, *, cwd: Path = ROOT) -> list[str]:
    """Run ``script`` with ``manage.py shell -c`` against ``env``'s database; the lines it
    printed (Django's own start-up output, if any, comes first)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip().splitlines()


def prepare_synthlang(env: dict, *, cwd: Path = ROOT) -> str:
    """Migrate the bench database and create a premium key with generous limits, with the
    code (and migrations) of the checkout in ``cwd``."""
    migrate(env, cwd=cwd)
    script = (
        "from accounts import services; from accounts.models import Organization;"
        "org = Organization.objects.filter(slug='bench').first() or "
        "services.organization_create(name='Bench', slug='bench');"
        "user, _ = services.user_get_or_create(username='bench');"
        "services.membership_set(organization=org, user=user, role='premium', actor=None);"
        "services.role_limit_set(organization=org, role='premium', rpm_limit=10_000_000,"
        " tpm_limit=1_000_000_000, actor=None);"
        "print(services.api_key_create(organization=org, user=user, actor=None)[1])"
    )
    return manage_shell(script, env, cwd=cwd)[-1]


@contextlib.asynccontextmanager
async def fake_upstream(
    workdir: Path, *, port: int | None = None, env: dict | None = None
) -> AsyncIterator[str]:
    """``proxy.fake_upstream`` on ``port`` (a free one by default); yields its base URL."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(
        [sys.executable, "-m", "proxy.fake_upstream", "--port", str(port)],
        env or bench_environment(),
        workdir / "upstream.log",
    )
    try:
        await wait_http(f"{url}/_stats")
        yield url
    finally:
        stop(process)


@dataclass(frozen=True)
class RunningProxy:
    url: str  # http://127.0.0.1:PORT, without /v1
    key: Any  # what the set-up returned: the bench key unless it was replaced
    env: dict
    process: subprocess.Popen


@contextlib.asynccontextmanager
async def synthlang_proxy(
    workdir: Path,
    *,
    upstream_url: str,
    port: int | None = None,
    workers: int | None = None,
    setup: Callable[[dict], Any] = prepare_synthlang,
    base_env: dict | None = None,
    root: Path = ROOT,
    log_name: str = "proxy.log",
    profile_to: Path | None = None,
    callgrind_to: Path | None = None,
    callgrind_options: tuple[str, ...] = (),
    **overrides: str,
) -> AsyncIterator[RunningProxy]:
    """A production-mode proxy in front of ``upstream_url``, once ``setup(env)`` (migrate
    and create the bench key, by default) has run; stopped gracefully on the way out.

    ``workers`` None leaves the count to the server (``WEB_CONCURRENCY`` or the cores);
    ``root`` runs the proxy of another checkout; ``profile_to`` runs it under cProfile,
    which writes its statistics there when the server stops (one worker only: a supervisor
    would profile itself); ``callgrind_to`` runs it under valgrind's callgrind, which
    writes the machine instructions it counted there (one worker only, too), with
    ``callgrind_options`` added to valgrind's; ``overrides`` are environment variables.
    """
    port = port or free_port()
    env = proxy_environment(
        base_env or bench_environment(),
        workdir=workdir,
        proxy_port=port,
        upstream_url=upstream_url,
        **overrides,
    )
    key = setup(env)
    command = [sys.executable, "-m", "synthlang_site"]
    if profile_to is not None:
        command[1:1] = ["-m", "cProfile", "-o", str(profile_to)]
    if callgrind_to is not None:
        command[:0] = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={callgrind_to}",
            *callgrind_options,
        ]
    slowdown = 1 if callgrind_to is None else 10  # valgrind's start and stop take minutes
    if workers is not None:
        command += ["--workers", str(workers)]
    process = start(command, env, workdir / log_name, cwd=root)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_http(f"{url}/health", timeout=90 * slowdown)
        yield RunningProxy(url=url, key=key, env=env, process=process)
    finally:
        stop(process, timeout=60 * slowdown)
