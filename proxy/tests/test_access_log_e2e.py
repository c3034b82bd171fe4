"""The access line on a real server: one JSON line per request with the call's fields, the
request id on every record, the id and trace context sent upstream, the cost told to the
client. Driven with the official OpenAI SDK."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import openai
import pytest

from billing.models import Price
from common.testing import live_server

pytestmark = pytest.mark.live

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
PROMPT = "Name three colours of the rainbow, please."


def _lines(log_path) -> list[dict]:
    records = []
    for raw in log_path.read_text().splitlines():
        if raw.startswith("{"):
            try:
                records.append(json.loads(raw))
            except ValueError:
                continue
    return records


def _access_line(log_path, request_id: str, *, timeout: float = 10.0) -> dict:
    """The access line of ``request_id``: written once the call is accounted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            r
            for r in _lines(log_path)
            if r.get("logger") == "synthlang.access" and r.get("request_id") == request_id
        ]
        if found:
            time.sleep(0.2)  # a second line would show up as well
            found = [
                r
                for r in _lines(log_path)
                if r.get("logger") == "synthlang.access" and r.get("request_id") == request_id
            ]
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}")


@pytest.fixture
def priced(live_db):
    Price.objects.create(
        model_pattern="gpt-4o-mini",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=150_000,
        output_per_mtok_micros=600_000,
    )


@pytest.fixture
def server(live_db, priced, route_to, tmp_path):
    route_to("team-model", ("gpt-4o-mini", 0))
    route_to("broken-model", ("fake-fail-500", 0))
    log_path = tmp_path / "server.log"
    env = {"UPSTREAM_MAX_RETRIES": "0", "ROUTE_CACHE_SECONDS": "0", "LOG_FILE": ""}
    with live_server(env=env, log_path=log_path) as base_url:
        yield base_url, log_path


def _client(base_url: str, key: str, **headers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{base_url}/v1", api_key=key, max_retries=0, default_headers=headers
    )


def test_a_chat_writes_one_line_with_its_fields_and_sends_its_id_upstream(
    server, alice_key, org_a, fake_upstream
):
    base_url, log_path = server
    client = _client(base_url, alice_key, traceparent=TRACEPARENT)
    raw = client.chat.completions.with_raw_response.create(
        model="team-model",
        messages=[{"role": "user", "content": PROMPT}],
        user="end-user-42",
        extra_headers={"X-Request-Id": "req-chat-0000001", "x-synthlang-cache": "off"},
    )
    completion = raw.parse()
    assert raw.headers["x-request-id"] == "req-chat-0000001"
    line = _access_line(log_path, "req-chat-0000001")

    assert line["level"] == "INFO" and line["message"] == "access"
    assert line["status"] == 200 and line["method"] == "POST"
    assert line["path"] == "/v1/chat/completions" and line["endpoint"] == "chat.completions"
    assert line["organization"] == "org-a" and line["organization_id"] == org_a.id
    # The key's public prefix (what the admin shows), never the key.
    assert alice_key.removeprefix("sk-syn-").startswith(line["key_prefix"])
    assert 4 <= len(line["key_prefix"]) < 16
    assert line["member"] == "alice"
    assert line["end_user"] == "end-user-42"
    assert line["model"] == "team-model"
    assert line["deployment"].startswith("openai/gpt-4o-mini")
    assert line["prompt_tokens"] == completion.usage.prompt_tokens
    assert line["completion_tokens"] == completion.usage.completion_tokens
    assert line["cached_tokens"] == 0
    assert line["cache"] == "off"
    assert line["latency_ms"] >= line["upstream_ms"] > 0
    assert "ttft_ms" not in line  # not a stream
    # The cost: the list price of gpt-4o-mini for these tokens, told to the client too.
    expected = -(
        -(completion.usage.prompt_tokens * 150_000 + completion.usage.completion_tokens * 600_000)
        // 1_000_000
    )
    assert line["cost_usd"] == f"0.{expected:06d}"
    assert raw.headers["x-synthlang-cost-usd"] == line["cost_usd"]

    upstream = fake_upstream.stats()["last_trace"]["gpt-4o-mini"]
    assert upstream["x-request-id"] == "req-chat-0000001"
    assert upstream["traceparent"] == TRACEPARENT

    text = log_path.read_text()
    assert PROMPT not in text
    assert alice_key not in text


def test_a_stream_line_has_its_time_to_first_token_and_the_usage_chunk_its_cost(server, alice_key):
    base_url, log_path = server
    client = _client(base_url, alice_key)
    stream = client.chat.completions.create(
        model="team-model",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Request-Id": "req-stream-000001", "x-synthlang-cache": "off"},
    )
    chunks = list(stream)
    usage_chunk = chunks[-1]
    assert usage_chunk.usage is not None
    line = _access_line(log_path, "req-stream-000001")
    assert line["stream"] is True and line["status"] == 200
    assert 0 < line["ttft_ms"] <= line["latency_ms"]
    assert line["completion_tokens"] == usage_chunk.usage.completion_tokens > 0
    assert usage_chunk.usage.model_extra["cost_usd"] == float(line["cost_usd"]) > 0


def test_a_cache_hit_line_says_hit_and_costs_nothing(server, alice_key):
    base_url, log_path = server
    client = _client(base_url, alice_key)
    question = [{"role": "user", "content": "What is the capital of Portugal?"}]
    client.chat.completions.create(
        model="team-model", messages=question, extra_headers={"X-Request-Id": "req-miss-0000001"}
    )
    assert _access_line(log_path, "req-miss-0000001")["cache"] == "miss"
    for _ in range(50):  # the answer is stored after the response
        raw = client.chat.completions.with_raw_response.create(
            model="team-model",
            messages=question,
            extra_headers={"X-Request-Id": "req-hit-00000001"},
        )
        if raw.headers["x-synthlang-cache"] == "hit":
            break
        time.sleep(0.1)
    assert raw.headers["x-synthlang-cache"] == "hit"
    line = _access_line(log_path, "req-hit-00000001")
    assert line["cache"] == "hit" and line["cache_tier"] == "exact"
    assert line["cost_usd"] == "0.000000" == raw.headers["x-synthlang-cost-usd"]
    assert "upstream_ms" in line and "deployment" not in line


def test_an_upstream_failure_is_logged_with_its_code_and_every_record_has_the_id(server, alice_key):
    base_url, log_path = server
    client = _client(base_url, alice_key)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(
            model="broken-model",
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"X-Request-Id": "req-fail-0000001"},
        )
    assert raised.value.status_code >= 500
    line = _access_line(log_path, "req-fail-0000001")
    assert line["status"] == raised.value.status_code
    assert line["error_code"] == raised.value.code
    assert line["level"] == "INFO"
    # Django's own error record, written after the middleware chain has returned, has it.
    errors = [r for r in _lines(log_path) if r["level"] == "ERROR"]
    assert [r["logger"] for r in errors] == ["django.request"]
    assert errors[0]["request_id"] == "req-fail-0000001"


def test_a_request_refused_before_any_call_still_has_its_line(server):
    base_url, log_path = server
    client = _client(base_url, "sk-syn-not-a-real-key-000000000000")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="team-model",
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"X-Request-Id": "req-refused-00001"},
        )
    line = _access_line(log_path, "req-refused-00001")
    assert line["status"] == 401 and line["path"] == "/v1/chat/completions"
    assert "sk-syn-not-a-real-key" not in log_path.read_text()
