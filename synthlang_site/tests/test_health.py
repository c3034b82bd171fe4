"""Probes: /livez, /readyz and /health (which answers as /readyz does), in process and on a
real server, with the database unreachable and under production settings."""

import http.client
import json
import urllib.parse

import pytest
from django.db import connection

from common import health
from common.testing import live_server

# Nothing listens here (a port of this test file's own range, never bound).
CLOSED_PORT = 7701


def _get(url: str, headers: dict | None = None) -> tuple[int, dict, str]:
    """One GET, redirects not followed, with the Host header the caller gives."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        connection.request("GET", parts.path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read().decode()
    finally:
        connection.close()


@pytest.mark.django_db
def test_health_reports_each_component_and_answers_200(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["not_ready"] == [] and body["failing"] == []
    assert body["components"]["database"]["status"] == "ok"
    assert body["components"]["database"]["vendor"] == connection.vendor
    assert body["components"]["cache"]["status"] == "ok"
    assert "broker" in body["components"]


@pytest.mark.django_db
def test_readyz_and_health_give_the_same_answer(client):
    readyz, health_answer = client.get("/readyz"), client.get("/health")
    assert readyz.status_code == health_answer.status_code == 200
    strip = lambda body: {  # noqa: E731 - latencies differ between two calls
        **body,
        "components": {
            name: {k: v for k, v in state.items() if k != "latency_ms"}
            for name, state in body["components"].items()
        },
    }
    assert strip(readyz.json()) == strip(health_answer.json())


def test_livez_answers_without_touching_the_database(client):
    # No django_db mark: any query here would raise.
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_a_failing_required_component_is_named_without_its_exception_text(
    client, monkeypatch, caplog, settings
):
    settings.READYZ_REQUIRES = ["database", "semantic_cache"]

    def broken():
        raise ConnectionError("redis://:hunter2@10.0.0.7:6379 refused the connection")

    monkeypatch.setitem(health._registered, "semantic_cache", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["not_ready"] == ["semantic_cache"]
    assert body["components"]["semantic_cache"]["status"] == "error"
    assert "10.0.0.7" not in response.content.decode()
    assert "hunter2" not in response.content.decode()
    assert "ConnectionError" not in response.content.decode()
    # The reason goes to the log, where operators read it.
    assert any("semantic_cache is error" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_a_component_that_is_not_required_leaves_the_instance_ready(client, monkeypatch, settings):
    settings.READYZ_REQUIRES = ["database"]
    monkeypatch.setitem(health._registered, "semantic_cache", lambda: {"status": "degraded"})
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["failing"] == ["semantic_cache"]


@pytest.mark.live
def test_readyz_is_503_naming_the_database_and_livez_200_when_it_is_unreachable(tmp_path):
    # A real server process whose database port has nobody listening.
    env = {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{CLOSED_PORT}/nowhere",
        "USE_SQLITE": "0",
    }
    with live_server(env=env, log_path=tmp_path / "server.log") as base_url:
        live = _get(f"{base_url}/livez")
        ready = _get(f"{base_url}/readyz")
        health_answer = _get(f"{base_url}/health")
    assert live[0] == 200 and json.loads(live[2]) == {"status": "ok"}
    assert ready[0] == 503 and health_answer[0] == 503
    for _status, _headers, text in (ready, health_answer):
        body = json.loads(text)
        assert body["status"] == "not_ready"
        assert body["not_ready"] == ["database"]
        assert body["components"]["database"]["status"] == "error"
        assert str(CLOSED_PORT) not in text and "127.0.0.1" not in text
        assert "error" not in body["components"]["database"]


@pytest.mark.live
def test_probes_and_scrapes_answer_any_host_over_plain_http_in_production(tmp_path):
    env = {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "proxy.example.com",
        "SECURE_SSL_REDIRECT": "true",
        "METRICS_TOKEN": "scrape-token-for-tests",
        "LOG_FILE": "",
        # Not this test's subject: one process (production starts two per core), and no
        # model for the first readiness check to load.
        "WEB_CONCURRENCY": "1",
        "ENABLE_CACHE": "false",
    }
    pod_ip = {"Host": "10.12.0.7:8000"}
    with live_server(env=env, log_path=tmp_path / "server.log") as base_url:
        answers = {path: _get(f"{base_url}{path}", pod_ip) for path in ("/livez", "/readyz")}
        answers["/health"] = _get(f"{base_url}/health", pod_ip)
        scrape_without = _get(f"{base_url}/metrics", pod_ip)
        scrape_with = _get(
            f"{base_url}/metrics", {**pod_ip, "Authorization": "Bearer scrape-token-for-tests"}
        )
        # The rest of the site still validates the Host and redirects to HTTPS.
        other_host = _get(f"{base_url}/admin/login/", pod_ip)
        plain_http = _get(f"{base_url}/admin/login/", {"Host": "proxy.example.com"})
    for path, (status, _headers, _text) in answers.items():
        assert status == 200, path
    assert scrape_without[0] == 401
    assert scrape_with[0] == 200
    assert "# TYPE" in scrape_with[2]
    assert other_host[0] == 400
    assert plain_http[0] == 301
    assert plain_http[1]["Location"].startswith("https://proxy.example.com/")
