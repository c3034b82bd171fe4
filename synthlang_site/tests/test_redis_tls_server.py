"""Every Redis user over TLS to a real redis-server with a self-signed certificate, as
Heroku's Redis serves it: one setting (REDIS_SSL_CERT_REQS=none) makes all of them work, and
without it the certificate is refused.

The server is started here with ``--tls-port`` and a certificate made by openssl; the proxy
runs as a live server (Django cache, rate limits, budgets, the usage buffer, the pipelined
client) and a probe process exercises Channels and a Celery worker (broker and results).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime

import pytest
import redis
from django.conf import settings

from billing import services as billing_services
from billing.models import Price
from common.testing import free_port, live_server
from synthlang_site.tests.test_graceful_shutdown import server_process

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A redis-server that speaks only TLS, with a certificate signed by nobody."""
    if not shutil.which("redis-server") or not shutil.which("openssl"):
        pytest.skip("redis-server and openssl are needed")
    folder = tmp_path_factory.mktemp("tls-redis")
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
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server", "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
            "--bind", "127.0.0.1", "--dir", str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_cert_reqs="none")
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.05)
    try:
        yield {"url": f"rediss://127.0.0.1:{port}/0", "cert": cert, "client": client}
    finally:
        process.terminate()
        process.wait(timeout=10)


def _get_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def _post(url: str, key: str, body: dict) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _tls_env(tls_redis, **extra) -> dict[str, str]:
    return {
        "REDIS_URL": tls_redis["url"],
        "CACHE_TYPE": "redis",
        "CELERY_BROKER_URL": "",
        "OPENAI_API_KEY": "",
        "ENABLE_CACHE": "false",
        "BASIC_RPM": "2",
        **extra,
    }


def test_the_proxy_uses_tls_redis_for_cache_limits_budgets_and_usage(
    tls_redis, org_a, bob, bob_key, tmp_path
):
    client = tls_redis["client"]
    client.flushdb()
    Price.objects.create(
        model_pattern="gpt-4o-mini",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=150_000,
        output_per_mtok_micros=600_000,
    )
    billing_services.budget_set(organization=org_a, monthly_limit_micros=10**9, actor=None)
    env = _tls_env(tls_redis, REDIS_SSL_CERT_REQS="none")
    log = tmp_path / "server.log"
    with live_server(env=env, log_path=log) as base:
        health = _get_json(f"{base}/health")
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
        statuses = [_post(f"{base}/v1/chat/completions", bob_key, body) for _ in range(3)]
        time.sleep(0.5)  # the usage push trails the response by a batch delay
    assert health["components"]["cache"]["status"] == "ok", health
    assert health["components"]["broker"]["status"] == "ok", health
    # bob is basic with 2 requests a minute: the third is refused by the limit in Redis.
    assert statuses == [200, 200, 429]
    keys = {key.decode() for key in client.keys("*")}
    assert any(key.startswith("synthlang:rl:") for key in keys), keys
    assert any(key.startswith("synthlang:billing:budget:") for key in keys), keys
    # Each answered request and the refusal left an event in the shared buffer.
    assert client.llen("synthlang:billing:usage:buffer") == 3
    text = log.read_text()
    assert "buffering event in process" not in text
    assert "CERTIFICATE_VERIFY_FAILED" not in text


def test_without_the_setting_the_self_signed_certificate_is_refused(tls_redis, tmp_path):
    # Ready once the API answers: /health itself waits for the broker's retry here.
    with server_process(
        tmp_path, workers=1, extra_env=_tls_env(tls_redis), ready_path="/v1/models"
    ) as (_process, port):
        health = _get_json(f"http://127.0.0.1:{port}/health")
    # Redis is reported as failing; under the default outage policy (`local`) it does not
    # decide readiness, and neither does the broker.
    assert health["status"] == "degraded"
    assert "cache" in health["failing"] and health["not_ready"] == []
    assert set(health["failing"]) == {"cache", "broker"}


def test_a_pinned_certificate_authority_is_verified(tls_redis, tmp_path):
    env = _tls_env(tls_redis, REDIS_SSL_CA_CERTS=str(tls_redis["cert"]))
    with live_server(env=env, log_path=tmp_path / "server.log") as base:
        health = _get_json(f"{base}/health")
    assert health["failing"] == [], health


PROBE = """
import asyncio, json, os, django
django.setup()
from django.conf import settings
from channels.layers import get_channel_layer
from common import redis as shared_redis
from synthlang_site.celery import app

async def main():
    layer = get_channel_layer()
    name = await layer.new_channel()
    await layer.send(name, {"type": "probe.message", "text": "over tls"})
    message = await layer.receive(name)
    pipelined = await shared_redis.pipelined_redis().execute("PING")
    return message["text"], pipelined.decode()

channels_text, pipelined = asyncio.run(main())
result = app.send_task("celery.accumulate", args=(4, 2), queue=os.environ["PROBE_QUEUE"])
print(json.dumps({
    "channels": channels_text,
    "pipelined": pipelined,
    "celery": result.get(timeout=60),
    "broker": settings.CELERY_BROKER_URL.split("?", 1)[1],
}))
"""


def test_channels_and_a_celery_worker_use_tls_redis_with_the_setting(tls_redis, tmp_path):
    env = {
        **os.environ,
        "DEBUG": "true",
        "LOG_FILE": "",
        "REDIS_URL": tls_redis["url"],
        "CACHE_TYPE": "redis",
        # Set explicitly, as the variables Celery also reads by itself (ahead of settings).
        "CELERY_BROKER_URL": tls_redis["url"],
        "CELERY_RESULT_BACKEND": tls_redis["url"].rsplit("/", 1)[0] + "/1",
        "REDIS_SSL_CERT_REQS": "none",
        "PROBE_QUEUE": "tls-probe",
        # The probe checks the hand-written pipelined client over TLS, whatever the run's
        # setting; redis-py's client is what Channels and Celery use here anyway.
        "SYNTHLANG_FAST_PATHS": "true",
    }
    worker_log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "synthlang_site", "worker", "--pool", "solo",
         "--queues", "tls-probe", "--without-heartbeat", "--without-gossip", "--without-mingle",
         "-l", "info"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        probe = subprocess.run(
            [sys.executable, "-c", PROBE],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        worker_log.close()
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result == {
        "channels": "over tls",
        "pipelined": "PONG",
        "celery": [4, 2],
        "broker": "ssl_cert_reqs=none",
    }
