import json
import logging

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


def test_request_id_header_is_returned_and_a_client_id_is_kept(client, db):
    response = client.get("/metrics", HTTP_X_REQUEST_ID="client-trace-0001")
    assert response["x-request-id"] == "client-trace-0001"
    generated = client.get("/metrics")["x-request-id"]
    assert generated.startswith("req_") and len(generated) == 36
