"""Several server processes on one port: ``python -m synthlang_site --workers N``.

One Daphne process runs one event loop on one core. With N workers, this process (the
supervisor) binds the listening socket once and starts N Daphne processes that each adopt
it (Daphne's ``--fd``): the kernel hands every new connection to one of the processes
waiting on that socket. Why a shared socket and not SO_REUSEPORT, and what stays per
process: docs/decisions/0015-workers-and-graceful-restarts.md.

The supervisor runs no application code. It migrates first when AUTO_MIGRATE is on (once,
not once per worker), restarts a worker that dies, and passes signals on:

- SIGTERM / SIGINT: every worker drains (synthlang_site.server); the supervisor closes its
  copy of the socket, waits for them, and exits with 0 when all stopped cleanly.
- SIGHUP: rolling restart. Each worker in turn is replaced by a new one, which starts
  serving before the old one drains, so the port never stops answering.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger("synthlang_site.workers")

# A worker takes 5-15 s to start (Django, the tokenizers, the embedding model).
START_TIMEOUT_SECONDS = 120.0
# A worker that dies this often in a row keeps dying; the supervisor gives up, and the
# platform's own restart (with its logs) takes over.
MAX_RAPID_RESTARTS = 5
RAPID_RESTART_WINDOW_SECONDS = 60.0
POLL_SECONDS = 0.2
# The accept backlog of the shared socket: connections wait there while every worker is
# busy. The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 2048
# Resident memory of one worker measured with the benchmark (about 310 MB) plus headroom.
WORKER_MEMORY_BYTES = 400 * 1024 * 1024


# --- How many ---------------------------------------------------------------------------


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota
    (``docker run --cpus``, Kubernetes limits), which os.cpu_count() does not see."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_cpu_quota() -> float | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]  # cgroup v2
    except (OSError, ValueError):
        try:
            quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()  # v1
            period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _available_memory() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 1 << 60:  # v1 reports "no limit" as a huge number
            return int(value)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_worker_count(*, cores: int | None = None, memory_bytes: int | None = None) -> int:
    """The seed guide's rule for an I/O-bound service, two processes per core, as far as
    memory allows one worker's footprint each."""
    cores = available_cores() if cores is None else cores
    count = 2 * cores
    memory = _available_memory() if memory_bytes is None else memory_bytes
    if memory:
        count = min(count, memory // WORKER_MEMORY_BYTES)
    return max(1, count)


def worker_count(*, requested: int | None, settings) -> int:
    """``--workers``, else WEB_CONCURRENCY, else 1 in development and in the embedded
    default, else the default for this machine."""
    from django.core.exceptions import ImproperlyConfigured

    if requested is None:
        requested = settings.WEB_CONCURRENCY or None
    single_process = settings.DEBUG or settings.CACHE_TYPE != "redis"
    if requested is None:
        return 1 if single_process else default_worker_count()
    if requested < 1:
        raise ImproperlyConfigured(f"--workers must be at least 1, not {requested}.")
    if requested > 1 and settings.CACHE_TYPE != "redis":
        # Rate limits, budgets and caches live in each process's memory without Redis:
        # N processes would each allow the whole limit.
        raise ImproperlyConfigured(
            f"{requested} server processes need REDIS_URL (CACHE_TYPE=redis): without it "
            "rate limits, budgets and caches are per process. Use WEB_CONCURRENCY=1."
        )
    return requested


# --- The supervisor ---------------------------------------------------------------------


@dataclass
class _Worker:
    process: subprocess.Popen
    ready_read: int  # the worker writes one byte here once it listens
    ready: bool = False
    started_at: float = field(default_factory=time.monotonic)
    retiring: bool = False  # replaced by a rolling restart; its exit is expected


class Supervisor:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        workers: int,
        grace_seconds: float,
        daphne_args: list[str],
    ) -> None:
        self.host = host
        self.port = port
        self.count = workers
        self.grace_seconds = grace_seconds
        self.daphne_args = daphne_args
        self.workers: list[_Worker] = []
        self._stopping = False
        self._reload_requested = False
        self._crashes: list[float] = []
        self.socket: socket.socket | None = None
        self._metrics_dir: str | None = None

    def run(self) -> int:
        self.socket = self._bind()
        self._prepare_metrics()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_reload_signal)
        try:
            for _ in range(self.count):
                self.workers.append(self._spawn())
            if not self._wait_ready(self.workers):
                # A SIGTERM before every worker listened is an ordinary stop (the port
                # answers once the first one does, so a deploy may stop it then).
                code = self._stop_all()
                return code if self._stopping else 1
            logger.info(
                "serving on %s:%d with %d worker processes (pids %s)",
                self.host,
                self.socket.getsockname()[1],
                self.count,
                ", ".join(str(w.process.pid) for w in self.workers),
            )
            while not self._stopping:
                if self._reload_requested:
                    self._reload_requested = False
                    self._rolling_restart()
                if not self._reap_and_replace():
                    self._stop_all()
                    return 1
                time.sleep(POLL_SECONDS)
            return self._stop_all()
        finally:
            self._cleanup_metrics()

    # --- signals --------------------------------------------------------------------------

    def _on_stop_signal(self, signum, frame) -> None:
        if self._stopping and signum == signal.SIGINT:
            for worker in self.workers:
                _send(worker.process, signal.SIGINT)  # a second Ctrl-C: workers stop now
        self._stopping = True

    def _on_reload_signal(self, signum, frame) -> None:
        self._reload_requested = True

    # --- workers --------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        if family == socket.AF_INET6:
            # Daphne adopts a descriptor as IPv4 only (its fd endpoint has no family option).
            raise SystemExit("--workers above 1 needs an IPv4 HOST (such as 0.0.0.0).")
        sock = socket.create_server((self.host, self.port), family=family, backlog=LISTEN_BACKLOG)
        sock.set_inheritable(True)
        return sock

    def _prepare_metrics(self) -> None:
        # Each worker counts its own requests; Prometheus' multiprocess mode sums them, so
        # /metrics (answered by whichever worker gets the scrape) shows the instance's totals.
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            self._metrics_dir = tempfile.mkdtemp(prefix="synthlang-metrics-")

    def _cleanup_metrics(self) -> None:
        if self._metrics_dir:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _spawn(self) -> _Worker:
        ready_read, ready_write = os.pipe()
        fd = self.socket.fileno()
        env = {
            **os.environ,
            "AUTO_MIGRATE": "0",  # the supervisor migrated, once
            "SYNTHLANG_READY_FD": str(ready_write),
        }
        if self._metrics_dir:
            env["PROMETHEUS_MULTIPROC_DIR"] = self._metrics_dir
        process = subprocess.Popen(  # noqa: S603 - this interpreter, our own arguments
            [sys.executable, "-m", "synthlang_site", "--workers", "1", "--fd", str(fd)]
            + self.daphne_args,
            env=env,
            pass_fds=(fd, ready_write),
        )
        os.close(ready_write)
        return _Worker(process=process, ready_read=ready_read)

    def _wait_ready(self, workers: list[_Worker]) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self._stopping:
            for worker in workers:
                if worker.ready:
                    continue
                if worker.process.poll() is not None:
                    logger.error(
                        "worker %d exited with %s before it served anything",
                        worker.process.pid,
                        worker.process.returncode,
                    )
                    return False
                worker.ready = _read_ready(worker.ready_read)
            if all(worker.ready for worker in workers):
                return True
            time.sleep(POLL_SECONDS)
        if not self._stopping:
            logger.error("workers did not start within %.0f s", START_TIMEOUT_SECONDS)
        return False

    def _reap_and_replace(self) -> bool:
        for index, worker in enumerate(self.workers):
            code = worker.process.poll()
            if code is None:
                continue
            self._forget(worker)
            now = time.monotonic()
            self._crashes = [t for t in self._crashes if now - t < RAPID_RESTART_WINDOW_SECONDS]
            self._crashes.append(now)
            if len(self._crashes) > MAX_RAPID_RESTARTS:
                logger.error("workers keep exiting (%d in a minute); stopping", len(self._crashes))
                return False
            logger.warning("worker %d exited with %s; starting another", worker.process.pid, code)
            replacement = self._spawn()
            self.workers[index] = replacement
            if not self._wait_ready([replacement]):
                return False
        return True

    def _rolling_restart(self) -> None:
        logger.info("rolling restart of %d workers", len(self.workers))
        for index, old in enumerate(list(self.workers)):
            if self._stopping:
                return
            new = self._spawn()
            if not self._wait_ready([new]):
                if self._stopping:  # stopped meanwhile: the new one stops with the rest
                    self.workers.append(new)
                    return
                # The new code does not start: keep the old worker serving.
                logger.error("the new worker did not start; keeping the running ones")
                _send(new.process, signal.SIGKILL)
                new.process.wait()
                self._forget(new)
                return
            self.workers[index] = new
            old.retiring = True
            _send(old.process, signal.SIGTERM)
            _wait(old.process, self.grace_seconds + 5)
            self._forget(old)

    def _stop_all(self) -> int:
        # No new connection can queue for workers that are about to stop; each worker
        # closes its own copy when it starts draining.
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        for worker in self.workers:
            _send(worker.process, signal.SIGTERM)
        codes = [_wait(worker.process, self.grace_seconds + 5) for worker in self.workers]
        for worker, code in zip(self.workers, codes, strict=True):
            if code != 0:  # says which worker made the supervisor's exit code 1
                logger.error("worker %d exited with %s while stopping", worker.process.pid, code)
        for worker in self.workers:
            self._forget(worker)
        return 0 if all(code == 0 for code in codes) else 1

    def _forget(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError):  # already closed
            os.close(worker.ready_read)
        if self._metrics_dir and worker.process.returncode is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.process.pid, self._metrics_dir)


def _read_ready(fd: int) -> bool:
    import select

    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable) and os.read(fd, 1) == b"1"


def _send(process: subprocess.Popen, signum: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            process.send_signal(signum)


def _wait(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        logger.error("worker %d did not stop in %.0f s; killing it", process.pid, timeout)
        process.kill()
        return process.wait()


def signal_ready() -> None:
    """In a worker: tell the supervisor that this process listens (once)."""
    fd = os.environ.pop("SYNTHLANG_READY_FD", None)
    if fd is None:
        return
    with contextlib.suppress(OSError):  # the supervisor is gone
        os.write(int(fd), b"1")
        os.close(int(fd))
