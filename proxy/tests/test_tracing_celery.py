"""Celery tasks in traces: a task a request queues runs, in the worker, as a child of the
request's spans (the trace context travels in the task's headers); a task beat queues
starts a trace of its own. Eager (the embedded default) in this process, then a real
prefork worker, a real beat and the server, all exporting to one OTLP receiver."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from contextlib import contextmanager

import openai
import pytest
from django.conf import settings

from common import testing, tracing
from proxy.tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.live

FLUSH_TASK = "billing.tasks.usage_flush"


@pytest.mark.django_db
def test_an_eager_task_is_a_child_of_the_span_that_queued_it(otlp_exported, celery_eager):
    from billing.tasks import usage_flush

    with tracing.span("request") as request_span:
        usage_flush.delay()
    assert tracing.force_flush(5000)

    run = next(s for s in otlp_exported.spans if s.name == f"run/{FLUSH_TASK}")
    request = next(s for s in otlp_exported.spans if s.name == "request")
    assert (
        run.trace_id == request.trace_id == format(request_span.get_span_context().trace_id, "032x")
    )
    assert run.parent_id == request.span_id
    assert run.kind == "consumer"


@pytest.fixture
def receiver():
    if not settings.REDIS_URL:
        pytest.skip("a real worker needs a broker: REDIS_URL")
    receiver = OtlpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


def _otel_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # milliseconds: export promptly for the test
        "OTEL_SERVICE_NAME": "celery-under-test",
        # The server and the worker share this test's Redis database as the broker.
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "LOG_FILE": "",
    }


def _wait_until_ready(process, log_path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while b" ready." not in log_path.read_bytes():
        assert process.poll() is None, log_path.read_text()[-3000:]
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.2)


@contextmanager
def _celery(receiver, tmp_path, *command: str, **extra_env: str):
    """``celery -A synthlang_site <command>`` against the test database and broker."""
    env = {
        **os.environ,
        "DEBUG": "true",
        "SECRET_KEY": settings.SECRET_KEY,
        "ENCRYPTION_KEY": ",".join(settings.ENCRYPTION_KEYS),
        "API_KEY_PEPPER": settings.API_KEY_PEPPER,
        **testing.test_database_env(),
        **_otel_env(receiver),
        **extra_env,
    }
    log_path = tmp_path / f"{command[0]}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "synthlang_site", *command, "-l", "info"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if command[0] == "worker":
                _wait_until_ready(process, log_path)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert process.returncode in (0, -15), log_path.read_text()[-3000:]


def test_a_task_a_request_queues_runs_in_the_worker_inside_the_requests_trace(
    receiver, route_to, tmp_path, alice_key, fake_upstream
):
    route_to("team-model", ("gpt-4o-mini", 0))
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    worker = ("worker", "--pool", "prefork", "--concurrency", "1", "--without-gossip")
    with (
        _celery(receiver, tmp_path, *worker),
        # Every usage event fills a batch, so each request queues the flush task itself.
        testing.live_server(
            env={**_otel_env(receiver), "USAGE_FLUSH_BATCH": "1"},
            log_path=tmp_path / "server.log",
        ) as base_url,
    ):
        openai.OpenAI(
            base_url=f"{base_url}/v1",
            api_key=alice_key,
            max_retries=0,
            default_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        ).chat.completions.create(
            model="team-model",
            messages=[{"role": "user", "content": "Name a colour."}],
            extra_headers={"x-synthlang-cache": "off"},
        )
        spans = receiver.trace(
            trace_id,
            names={"accounting", f"apply_async/{FLUSH_TASK}", f"run/{FLUSH_TASK}"},
            timeout=60,
        )

    by_id = {s.span_id: s for s in spans}
    run = next(s for s in spans if s.name == f"run/{FLUSH_TASK}")
    queued = by_id[run.parent_id]
    assert queued.name == f"apply_async/{FLUSH_TASK}" and queued.kind == "producer"
    assert run.kind == "consumer" and run.service == queued.service == "celery-under-test"
    # Queued by the request's accounting, in the server process.
    assert by_id[queued.parent_id].name == "accounting"
    # The worker's own spans in the task are its children (the flush writes the events).
    assert run.attributes["celery.task_name"] == FLUSH_TASK


def test_a_task_beat_queues_starts_its_own_trace(receiver, live_db, tmp_path):
    worker = ("worker", "--pool", "prefork", "--concurrency", "1", "--without-gossip")
    beat = ("beat", "--schedule", str(tmp_path / "beat-schedule"))
    with _celery(receiver, tmp_path, *worker), _celery(receiver, tmp_path, *beat):
        # Beat queues the usage flush every two seconds.
        spans = receiver.wait_for(
            lambda spans: any(s.name == f"run/{FLUSH_TASK}" for s in spans), timeout=60
        )
    run = next(s for s in spans if s.name == f"run/{FLUSH_TASK}")
    assert run.parent_id == ""
    assert run.kind == "consumer"


def test_a_pool_process_sends_its_spans_when_the_worker_stops(receiver, live_db, tmp_path):
    from synthlang_site.celery import app

    worker = ("worker", "--pool", "prefork", "--concurrency", "1", "--without-gossip")
    # The batch interval is ten minutes: only the pool process's flush at its stop exports.
    with _celery(receiver, tmp_path, *worker, OTEL_BSP_SCHEDULE_DELAY="600000") as process:
        app.send_task(FLUSH_TASK)
        log_path = tmp_path / "worker.log"
        deadline = time.monotonic() + 60
        while f"Task {FLUSH_TASK}[" not in log_path.read_text() or "succeeded" not in (
            log_path.read_text()
        ):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert not [s for s in receiver.spans if s.name == f"run/{FLUSH_TASK}"]
    assert [s for s in receiver.spans if s.name == f"run/{FLUSH_TASK}"]
