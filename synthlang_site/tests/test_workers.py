"""``python -m synthlang_site --workers N``: how many, one port for all, restarts without a gap."""

from __future__ import annotations

import re
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from synthlang_site import workers
from synthlang_site.tests.test_graceful_shutdown import assert_stops_cleanly, server_process

GIB = 1024**3


def _settings(**overrides):
    values = {"WEB_CONCURRENCY": 0, "DEBUG": False, "CACHE_TYPE": "redis", **overrides}
    return SimpleNamespace(**values)


def test_the_default_is_two_processes_per_core_as_memory_allows():
    assert workers.default_worker_count(cores=2, memory_bytes=24 * GIB) == 4
    assert workers.default_worker_count(cores=8, memory_bytes=2 * GIB) == 5
    assert workers.default_worker_count(cores=1, memory_bytes=256 * 1024**2) == 1


def test_development_and_the_embedded_default_run_one_process():
    assert workers.worker_count(requested=None, settings=_settings(DEBUG=True)) == 1
    assert workers.worker_count(requested=None, settings=_settings(CACHE_TYPE="memory")) == 1
    production = workers.worker_count(requested=None, settings=_settings())
    assert production == workers.default_worker_count()


def test_web_concurrency_and_the_option_choose_the_count():
    assert workers.worker_count(requested=None, settings=_settings(WEB_CONCURRENCY=3)) == 3
    assert workers.worker_count(requested=2, settings=_settings(WEB_CONCURRENCY=3)) == 2
    assert workers.worker_count(requested=2, settings=_settings(DEBUG=True)) == 2


def test_several_processes_without_redis_are_refused():
    # Limits, budgets and caches would be per process: each would allow the whole limit.
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        workers.worker_count(requested=2, settings=_settings(CACHE_TYPE="memory"))
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        workers.worker_count(requested=0, settings=_settings())


def test_a_cgroup_cpu_quota_caps_the_cores(tmp_path, monkeypatch):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")  # docker run --cpus=1.5
    real_path = workers.Path

    def fake_path(name):
        return cpu_max if name == "/sys/fs/cgroup/cpu.max" else real_path(name)

    monkeypatch.setattr(workers, "Path", fake_path)
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert workers.available_cores() == 2
    cpu_max.write_text("max 100000\n")
    assert workers.available_cores() == 8


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def _worker_pids(supervisor_pid: int) -> set[int]:
    children = f"/proc/{supervisor_pid}/task/{supervisor_pid}/children"
    with open(children) as handle:
        return {int(pid) for pid in handle.read().split()}


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_sighup_replaces_every_worker_while_the_port_keeps_answering(settings, tmp_path):
    if settings.CACHE_TYPE != "redis":
        pytest.skip("several workers need REDIS_URL")
    with server_process(tmp_path, workers=2) as (process, port):
        before = _worker_pids(process.pid)
        assert len(before) == 2
        failures: list[Exception] = []
        answered = 0
        done = threading.Event()

        def keep_asking() -> None:
            nonlocal answered
            while not done.is_set():
                try:
                    status, _ = _get(f"http://127.0.0.1:{port}/health")
                    answered += status == 200
                except Exception as error:
                    failures.append(error)

        asker = threading.Thread(target=keep_asking)
        asker.start()
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 120
        after = before
        while time.monotonic() < deadline:
            after = _worker_pids(process.pid)
            if len(after) == 2 and not after & before:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        done.set()
        asker.join()
        assert len(after) == 2 and not after & before, "the workers were not replaced"
        assert failures == []
        assert answered > 10
        assert_stops_cleanly(process, tmp_path)


def _multiprocess_dir(worker_pid: int) -> Path:
    with open(f"/proc/{worker_pid}/environ", "rb") as handle:
        variables = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if item)
    return Path(variables[b"PROMETHEUS_MULTIPROC_DIR"].decode())


def _not_found_count(directory: Path) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    value = registry.get_sample_value(
        "django_http_responses_total_by_status_total", {"status": "404"}
    )
    return value or 0.0


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_metrics_count_every_workers_requests_whichever_worker_is_scraped(settings, tmp_path):
    if settings.CACHE_TYPE != "redis":
        pytest.skip("several workers need REDIS_URL")
    with server_process(tmp_path, workers=2) as (process, port):
        pids = _worker_pids(process.pid)
        directory = _multiprocess_dir(next(iter(pids)))
        # New connections (urllib keeps none alive) until both workers have served some.
        sent, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            for _ in range(10):
                with pytest.raises(urllib.error.HTTPError):
                    _get(f"http://127.0.0.1:{port}/no-such-page")
                sent += 1
            per_worker = {}
            for pid in pids:
                alone = tmp_path / f"worker-{pid}"
                alone.mkdir(exist_ok=True)
                shutil.copy(directory / f"counter_{pid}.db", alone / f"counter_{pid}.db")
                per_worker[pid] = _not_found_count(alone)
            if all(per_worker.values()):
                break
        assert all(per_worker.values()), f"one worker served every request: {per_worker}"
        totals = set()
        for _ in range(8):
            _, text = _get(f"http://127.0.0.1:{port}/metrics")
            counted = re.findall(
                r'^django_http_responses_total_by_status_total\{status="404"\} (\S+)$', text, re.M
            )
            totals.add(float(counted[0]))
        assert_stops_cleanly(process, tmp_path)
    # Every scrape, whichever worker answered it, counted both workers' requests.
    assert totals == {float(sent)}
    assert not directory.exists()  # the supervisor removed its files


def test_the_command_refuses_several_workers_without_redis_with_a_message(tmp_path):
    import os
    import subprocess
    import sys

    from django.conf import settings as django_settings

    env = {**os.environ, "DEBUG": "true", "LOG_FILE": "", "REDIS_URL": "", "CACHE_TYPE": ""}
    result = subprocess.run(
        [sys.executable, "-m", "synthlang_site", "--workers", "2"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "need REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sigterm_while_workers_start_is_an_ordinary_stop(monkeypatch):
    """The port answers once the first worker listens, so a stop may come before the second
    one does: the supervisor stops them and exits 0, as after a stop once all served."""
    import os
    import subprocess
    import sys

    # A worker that never says it listens and exits 0 on SIGTERM, as Daphne's drain does.
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "print('handler set', flush=True)\n"
        "time.sleep(120)\n"
    )
    spawned = []

    def spawn_unready(self):
        ready_read, ready_write = os.pipe()
        os.close(ready_write)  # nothing will ever say "ready"
        process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE)
        process.stdout.readline()  # its SIGTERM handler is in place
        spawned.append(process)
        if len(spawned) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the deploy's stop, before either is ready
        return workers._Worker(process=process, ready_read=ready_read)

    monkeypatch.setattr(workers.Supervisor, "_spawn", spawn_unready)
    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # the supervisor takes these
    previous = {signum: signal.getsignal(signum) for signum in handled}
    supervisor = workers.Supervisor(
        host="127.0.0.1", port=0, workers=2, grace_seconds=5, daphne_args=[]
    )
    try:
        code = supervisor.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for process in spawned:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()
    assert code == 0
    assert [process.returncode for process in spawned] == [0, 0]
