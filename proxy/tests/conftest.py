"""Real processes for the proxy's end-to-end tests: a fake upstream and the proxy itself."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from django.conf import settings

from accounts import services
from common import tracing
from common.testing import free_port, live_server, wait_for_http
from proxy.models import Deployment, ModelRoute
from proxy.tests.otlp_receiver import OtlpReceiver

UPSTREAM_KEY = "sk-upstream-test-key-0001"


class FakeUpstreamProcess:
    def __init__(self, base_url: str):
        self.base_url = base_url

    @property
    def v1(self) -> str:
        return f"{self.base_url}/v1"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.base_url}/_stats", timeout=5) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.base_url}/_reset", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=5).read()


@pytest.fixture(scope="session")
def fake_upstream(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("upstream") / "upstream.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxy.fake_upstream",
            "--port",
            str(port),
            "--require-key",
            UPSTREAM_KEY,
            "--chunk-delay-ms",
            "0",
        ],
        cwd=settings.BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base_url}/_stats", process=process)
        yield FakeUpstreamProcess(base_url)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def proxy_url(django_db_setup, tmp_path_factory):
    """One proxy server process for the session, on the test database."""
    log_path = tmp_path_factory.mktemp("proxy") / "proxy.log"
    env = {
        "UPSTREAM_MAX_RETRIES": "2",
        "UPSTREAM_BACKOFF_BASE": "0.01",
        "UPSTREAM_BACKOFF_MAX": "0.5",
        "ROUTE_CACHE_SECONDS": "0",
        "MODELS_CACHE_SECONDS": "0",
        "DEPLOYMENT_COOLDOWN_SECONDS": "0",
    }
    with live_server(env=env, log_path=log_path) as base_url:
        yield base_url


@pytest.fixture
def live_db(transactional_db):
    """Committed data, visible to server processes."""
    return transactional_db


@pytest.fixture
def upstream_credential(live_db, fake_upstream, org_a):
    return services.provider_credential_set(
        organization=org_a,
        provider="openai",
        key=UPSTREAM_KEY,
        base_url=fake_upstream.v1,
        name="fake-upstream",
        actor=None,
    )


@pytest.fixture
def route_to(live_db, org_a, upstream_credential):
    """Create a route in org_a whose deployments go to the fake upstream over HTTP."""

    def make(public_name: str, *deployments: tuple[str, int]):
        route = ModelRoute.objects.create(organization=org_a, public_name=public_name)
        for upstream_model, priority in deployments:
            Deployment.objects.create(
                route=route,
                provider="openai",
                credential=upstream_credential,
                upstream_model=upstream_model,
                priority=priority,
            )
        return route

    return make


@pytest.fixture
def otlp_exported(monkeypatch):
    """Tracing on in this process, exporting to a local OTLP receiver (yielded). Only a
    flush exports (the batch interval is ten minutes), so a span at the receiver was sent
    by the code under test."""
    receiver = OtlpReceiver()
    receiver.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "start-paths-under-test")
    assert tracing.tracing_setup()
    yield receiver
    tracing.tracing_shutdown()
    receiver.stop()
