import json
import urllib.error
import urllib.request

import pytest
from django.db import connection

from common.testing import live_server


@pytest.mark.django_db
def test_health_reports_each_component_and_answers_200(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["components"]["database"]["status"] == "ok"
    assert body["components"]["database"]["vendor"] == connection.vendor
    assert body["components"]["cache"]["status"] == "ok"
    assert "broker" in body["components"]


@pytest.mark.live
def test_health_answers_503_naming_the_database_when_it_is_unreachable(tmp_path):
    # A real server process whose database port has nobody listening.
    env = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere", "USE_SQLITE": "0"}
    with (
        live_server(env=env, log_path=tmp_path / "server.log") as base_url,
        pytest.raises(urllib.error.HTTPError) as raised,
    ):
        urllib.request.urlopen(f"{base_url}/health", timeout=20)
    assert raised.value.code == 503
    body = json.loads(raised.value.read())
    assert body["status"] == "unhealthy"
    assert "database" in body["failing"]
    assert body["components"]["database"]["status"] == "error"


def test_the_suite_runs_on_postgresql_when_database_url_is_set(settings):
    import os

    if not os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is not set: this run uses the embedded SQLite default")
    assert connection.vendor == "postgresql"
    assert ("redis" if os.environ.get("REDIS_URL") else "memory") == settings.CACHE_TYPE
