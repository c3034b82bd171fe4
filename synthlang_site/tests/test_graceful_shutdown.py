"""SIGTERM on a live server: open streams finish and are accounted, new connections are refused.

Runs ``python -m synthlang_site`` as a platform does, with one worker and with two (the
supervisor passes the signal on), opens 50 streams through the official SDK, sends SIGTERM
while every stream is half-way through, and checks that each one still ends normally and
left its usage row.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import openai
import pytest
from django.conf import settings

from billing.models import UsageEvent
from billing.usage import usage_flush_run
from common import testing
from common.testing import free_port, wait_for_http

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

STREAMS = 50
# The fake provider waits 2 s before answering and 0.2 s between chunks: every stream is
# still open when the signal arrives, and ends about 3 s later.
SLOW_MODEL = "fake-slow-2000"
MAX_TOKENS = 12


@contextmanager
def server_process(
    tmp_path, *, workers: int, extra_env: dict | None = None, ready_path: str = "/health"
):
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "AUTO_MIGRATE": "0",
        "SECURE_SSL_REDIRECT": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "ENCRYPTION_KEY": ",".join(settings.ENCRYPTION_KEYS),
        "API_KEY_PEPPER": settings.API_KEY_PEPPER,
        "OPENAI_API_KEY": "",  # the offline fake provider answers
        "USAGE_FLUSH_IN_BACKGROUND": "true",
        "SHUTDOWN_GRACE_SECONDS": "20",
        "ENABLE_CACHE": "false",
        "BASIC_RPM": "0",
        "BASIC_TPM": "0",
        **testing.test_database_env(),
        **(extra_env or {}),
    }
    log = open(tmp_path / f"server-{workers}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "synthlang_site", "--workers", str(workers)],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}{ready_path}", timeout=120, process=process)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def assert_stops_cleanly(process, tmp_path, *, timeout: float = 30) -> None:
    """SIGTERM the server and expect exit code 0; a failure shows the end of its log."""
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=timeout)
    if code != 0:
        logs = sorted(tmp_path.glob("server-*.log"))
        tail = "\n".join(logs[-1].read_text(errors="replace").splitlines()[-40:]) if logs else ""
        pytest.fail(f"the server exited with {code}; the end of its log:\n{tail}")


def _stream(client: openai.OpenAI, index: int, started: threading.Semaphore, results: list):
    try:
        stream = client.chat.completions.create(
            model=SLOW_MODEL,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": f"Tell me about the number {index}."}],
        )
        pieces, finish, usage = [], None, None
        for number, chunk in enumerate(stream):
            if number == 1:
                started.release()  # past the first chunk: the stream is under way
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
            usage = chunk.usage or usage
        results[index] = ("".join(pieces), finish, usage)
    except Exception as error:  # recorded; the assertions below name it
        results[index] = error
        started.release()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_fifty_open_streams_finish_and_accounts_each(
    workers, org_a, alice, alice_key, tmp_path
):
    if workers > 1 and settings.CACHE_TYPE != "redis":
        pytest.skip("several workers need REDIS_URL")
    with server_process(tmp_path, workers=workers) as (process, port):
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=alice_key, max_retries=0, timeout=60
        )
        started = threading.Semaphore(0)
        results: list = [None] * STREAMS
        threads = [
            threading.Thread(target=_stream, args=(client, i, started, results))
            for i in range(STREAMS)
        ]
        for thread in threads:
            thread.start()
        for _ in range(STREAMS):
            assert started.acquire(timeout=60), "the streams did not start"
        signalled_at = time.monotonic()
        process.send_signal(signal.SIGTERM)

        # Stopped accepting: a new connection is refused while the streams still run.
        refused = False
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not refused:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                time.sleep(0.05)
            except ConnectionRefusedError:
                refused = True
        assert refused, "the server kept accepting connections after SIGTERM"

        for thread in threads:
            thread.join(timeout=60)
        assert process.wait(timeout=30) == 0
        stopped_after = time.monotonic() - signalled_at

    failures = [r for r in results if not isinstance(r, tuple)]
    assert failures == []
    for text, finish, usage in results:
        assert finish == "length"
        assert text
        assert usage.completion_tokens > 0
    # The server waited for the streams (about 3 s of chunks were left), not the whole grace.
    assert 1.0 < stopped_after < 20

    usage_flush_run()  # what the Celery worker does with events in the Redis buffer
    events = UsageEvent.objects.filter(organization=org_a, model=SLOW_MODEL)
    assert events.count() == STREAMS
    assert set(events.values_list("status_code", flat=True)) == {200}
    assert not events.filter(client_disconnected=True).exists()
    # Each row holds what its client was told it used.
    assert sorted(events.values_list("completion_tokens", flat=True)) == sorted(
        usage.completion_tokens for _text, _finish, usage in results
    )
