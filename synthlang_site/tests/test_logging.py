import json
import logging

import pytest

from common.access_log import (
    RequestContext,
    request_context_var,
    upstream_headers,
    valid_traceparent,
)
from common.logging import JsonFormatter, RedactSecretsFilter, RequestIdFilter, request_id_var


def render(message: str, *args, exc_info=None) -> dict:
    record = logging.LogRecord("test", logging.WARNING, __file__, 1, message, args, exc_info)
    RequestIdFilter().filter(record)
    RedactSecretsFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_log_lines_are_json_with_the_request_id():
    token = request_id_var.set("req_abc123")
    try:
        line = render("upstream answered %s", 200)
    finally:
        request_id_var.reset(token)
    assert line["request_id"] == "req_abc123"
    assert line["message"] == "upstream answered 200"
    assert line["level"] == "WARNING"


def test_secrets_are_redacted_from_message_and_arguments():
    key = "sk-syn-AbCdEfGh" + "x" * 40
    line = render("calling with %s and Authorization: Bearer abcdef123456789", key)
    assert key not in json.dumps(line)
    assert "abcdef123456789" not in line["message"]
    assert "[REDACTED]" in line["message"]


def test_secrets_are_redacted_from_exception_text():
    provider_key = "sk-proj-" + "Z" * 30
    try:
        raise ValueError(f"upstream refused {provider_key}")
    except ValueError:
        import sys

        line = render("failed", exc_info=sys.exc_info())
    assert provider_key not in json.dumps(line)
    assert "upstream refused [REDACTED]" in line["exception"]


def test_extra_fields_are_redacted_by_value_and_by_name():
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "access", (), None)
    record.detail = "Authorization: Bearer abcdef123456789"
    record.api_key = "plain-looking-value"
    record.headers = {"x-api-key": "sk-proj-" + "Q" * 30}
    record.prompt_tokens = 12
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert "abcdef123456789" not in line["detail"]
    assert line["api_key"] == "[REDACTED]"
    assert "Q" * 30 not in json.dumps(line["headers"])
    assert line["prompt_tokens"] == 12


def test_a_field_that_takes_the_place_of_the_time_or_level_is_still_redacted():
    """The formatter does not search its own time, level and logger name; a field passed
    under one of those names is not its own, and is searched like any other."""
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "access", (), None)
    record.time = "sk-proj-" + "T" * 30
    record.level = "Bearer abcdef123456789"
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert "T" * 30 not in line["time"]
    assert "abcdef123456789" not in line["level"]
    assert line["logger"] == "test"


def test_request_id_header_is_returned_and_a_client_id_is_kept(client, db):
    response = client.get("/metrics", HTTP_X_REQUEST_ID="client-trace-0001")
    assert response["x-request-id"] == "client-trace-0001"
    generated = client.get("/metrics")["x-request-id"]
    assert generated.startswith("req_") and len(generated) == 36


# --- The access line --------------------------------------------------------------------

ACCESS = "synthlang.access"


def _access_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ACCESS]


@pytest.mark.django_db
def test_a_page_gets_one_access_line_with_its_status_and_id(client, caplog):
    with caplog.at_level(logging.INFO, logger=ACCESS):
        response = client.get("/admin/login/", HTTP_X_REQUEST_ID="client-trace-0002")
    (record,) = _access_records(caplog)
    assert record.status == response.status_code == 200
    assert record.path == "/admin/login/" and record.method == "GET"
    assert record.request_id == "client-trace-0002"
    assert record.latency_ms > 0


@pytest.mark.django_db
def test_successes_are_sampled_and_errors_always_written(client, caplog, settings):
    settings.ACCESS_LOG_SAMPLE_RATE = 0.0
    with caplog.at_level(logging.INFO, logger=ACCESS):
        client.get("/admin/login/")
        client.get("/v1/models")  # no key: 401
    assert [r.status for r in _access_records(caplog)] == [401]


@pytest.mark.django_db
def test_the_access_line_can_be_turned_off(client, caplog, settings):
    settings.ACCESS_LOG = False
    with caplog.at_level(logging.INFO, logger=ACCESS):
        client.get("/v1/models")
    assert _access_records(caplog) == []


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", True),  # case-folded
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", False),
        ("not a trace", False),
        ("", False),
    ],
)
def test_only_a_well_formed_traceparent_is_passed_on(value, kept):
    assert (valid_traceparent(value) != "") is kept


def test_upstream_headers_carry_the_request_id_and_the_clients_trace_context():
    context = RequestContext(
        request_id="req_upstream01",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        tracestate="vendor=abc",
    )
    token = request_context_var.set(context)
    try:
        headers = upstream_headers()
    finally:
        request_context_var.reset(token)
    assert headers == {
        "X-Request-Id": "req_upstream01",
        "traceparent": context.traceparent,
        "tracestate": "vendor=abc",
    }
