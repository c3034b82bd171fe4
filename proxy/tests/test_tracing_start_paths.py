"""The server span on the start paths that are not Daphne: the Lambda handler (Mangum), the
Cloud Functions entry and the plain WSGI application. Each honours the client's
``traceparent`` with the same server span, its calls' spans nest under it, and the two
serverless entries have sent their spans before they return (the process may be frozen
right after). Tracing runs in this process, exporting to a local OTLP receiver."""

from __future__ import annotations

import json
import secrets
import socket
import time

import pytest

from common import tracing
from synthlang_site.tests.deployment_files import ROOT
from synthlang_site.tests.test_serverless_entry_points import (
    API_HOST,
    _http_api_event,
    _LambdaContext,
)

pytestmark = pytest.mark.live

RUN_APP_HOST = "synthlang-proxy-abc123-ew.a.run.app"
CHAT = {"model": "team-model", "messages": [{"role": "user", "content": "Name a colour."}]}
SPAN_NAMES = {"POST /v1/chat/completions", "admission", "chat gpt-4o-mini", "accounting"}


@pytest.fixture
def team_model(route_to, settings, monkeypatch):
    # What is tested is that the spans are sent before the entry returns, not how fast: a
    # loaded test machine may take longer than production's bound for the first export.
    monkeypatch.setattr("synthlang_site.serverless.SPAN_FLUSH_MILLIS", 30_000)
    settings.ALLOWED_HOSTS = [API_HOST, RUN_APP_HOST, "localhost"]
    # Importing the ASGI module (the Lambda entry) starts a server's usage flusher thread:
    # in this process it would drain the buffer under later tests' feet.
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    route_to("team-model", ("gpt-4o-mini", 0))


def _traceparent() -> tuple[str, str, str]:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent_id, f"00-{trace_id}-{parent_id}-01"


def _one(spans, name: str):
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def _assert_traced_under(receiver, fake_upstream, trace_id: str, parent_id: str) -> None:
    """What every start path gives: the server span under the client's, the call's spans
    under it, the upstream called with the attempt span as its parent. The spans are at
    the receiver already: nothing waits for them here."""
    spans = [s for s in receiver.spans if s.trace_id == trace_id]
    assert {s.name for s in spans} >= SPAN_NAMES, [s.name for s in spans]
    server = _one(spans, "POST /v1/chat/completions")
    assert server.kind == "server" and server.parent_id == parent_id
    assert server.service == "start-paths-under-test"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["synthlang.request_id"]
    attempt = _one(spans, "chat gpt-4o-mini")
    for name in ("admission", "chat gpt-4o-mini", "accounting"):
        assert _one(spans, name).parent_id == server.span_id, name
    # Accounted to the end before the entry returned, not cancelled with the view's loop.
    accounting = _one(spans, "accounting")
    assert accounting.status != 2, accounting.attributes
    assert accounting.attributes["gen_ai.usage.output_tokens"] > 0
    upstream = fake_upstream.stats()["last_trace"]["gpt-4o-mini"]
    assert upstream["traceparent"] == f"00-{trace_id}-{attempt.span_id}-01"
    assert upstream["x-request-id"] == server.attributes["synthlang.request_id"]


def test_the_lambda_handler_sends_its_spans_under_the_clients_traceparent_before_returning(
    otlp_exported, team_model, alice_key, fake_upstream
):
    from synthlang_site.serverless import lambda_handler

    trace_id, parent_id, traceparent = _traceparent()
    event = _http_api_event(
        "POST",
        "/v1/chat/completions",
        {
            "authorization": f"Bearer {alice_key}",
            "content-type": "application/json",
            "traceparent": traceparent,
            "x-synthlang-cache": "off",
        },
    )
    event["body"] = json.dumps(CHAT)

    response = lambda_handler(event, _LambdaContext())

    assert response["statusCode"] == 200, response["body"]
    _assert_traced_under(otlp_exported, fake_upstream, trace_id, parent_id)


def test_the_cloud_function_sends_its_spans_under_the_clients_traceparent_before_returning(
    otlp_exported, team_model, alice_key, fake_upstream
):
    functions_framework = pytest.importorskip("functions_framework")
    app = functions_framework.create_app(target="synthlang_proxy", source=str(ROOT / "main.py"))
    trace_id, parent_id, traceparent = _traceparent()

    response = app.test_client().post(
        "/v1/chat/completions",
        json=CHAT,
        headers={
            "Host": RUN_APP_HOST,
            "X-Forwarded-Proto": "https",
            "Authorization": f"Bearer {alice_key}",
            "traceparent": traceparent,
            "x-synthlang-cache": "off",
        },
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    _assert_traced_under(otlp_exported, fake_upstream, trace_id, parent_id)


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
def test_a_cloud_function_call_is_accounted_before_the_entry_returns(
    team_model, alice_key, fake_upstream, stream
):
    # Django's WSGI handler runs each async view in an event loop that ends with it, and
    # cancelled the accounting left to run after the answer: the usage was lost.
    from billing import usage
    from billing.models import UsageEvent

    functions_framework = pytest.importorskip("functions_framework")
    app = functions_framework.create_app(target="synthlang_proxy", source=str(ROOT / "main.py"))
    response = app.test_client().post(
        "/v1/chat/completions",
        json={**CHAT, "stream": stream},
        headers={
            "Host": RUN_APP_HOST,
            "X-Forwarded-Proto": "https",
            "Authorization": f"Bearer {alice_key}",
            "x-request-id": "req-cloud-function-1",
            "x-synthlang-cache": "off",
        },
    )
    assert response.status_code == 200
    if stream:
        # Every chunk (the relay ran in the view's loop), not the first and [DONE] alone.
        body = response.get_data(as_text=True)
        assert body.count("data: ") > 3 and body.rstrip().endswith("data: [DONE]")
    usage.usage_flush_run()
    event = UsageEvent.objects.get(request_id="req-cloud-function-1")
    assert event.completion_tokens > 0 and event.status_code == 200


def test_the_wsgi_application_opens_the_same_server_span(
    otlp_exported, team_model, alice_key, fake_upstream
):
    from werkzeug.test import Client

    from synthlang_site.wsgi import application

    trace_id, parent_id, traceparent = _traceparent()
    # Buffered: the body read and closed, as a server does when the answer is sent.
    response = Client(application).post(
        "/v1/chat/completions",
        buffered=True,
        json=CHAT,
        headers={
            "Authorization": f"Bearer {alice_key}",
            "traceparent": traceparent,
            "x-synthlang-cache": "off",
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    # A long-running WSGI server exports on the batch interval; flushed here instead.
    assert tracing.force_flush(5000)
    _assert_traced_under(otlp_exported, fake_upstream, trace_id, parent_id)


def test_a_request_without_traceparent_starts_its_own_trace_on_the_wsgi_path(
    otlp_exported, team_model
):
    from werkzeug.test import Client

    from synthlang_site.wsgi import application

    response = Client(application).get(
        "/livez", buffered=True, headers={"traceparent": "00-garbage-01"}
    )
    assert response.status_code == 200
    assert tracing.force_flush(5000)
    (server,) = [s for s in otlp_exported.spans if s.name == "GET /livez"]
    assert server.kind == "server" and server.parent_id == ""
    assert server.attributes["synthlang.request_id"] == response.headers["x-request-id"]


def test_a_collector_that_never_answers_costs_one_answer_the_flush_timeout_not_each(
    monkeypatch,
):
    # A port that takes connections and never answers: each export waits its timeout.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    assert tracing.tracing_setup()
    try:
        with tracing.span("first answer"):
            pass
        started = time.monotonic()
        assert tracing.force_flush(300) is False
        first = time.monotonic() - started
        with tracing.span("second answer"):
            pass
        started = time.monotonic()
        assert tracing.force_flush(300) is False  # the first export is still waiting
        second = time.monotonic() - started
    finally:
        tracing.tracing_shutdown()
        silent.close()
    assert 0.25 < first < 2.0
    assert second < 0.1
