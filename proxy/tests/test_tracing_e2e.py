"""Tracing on a real server: spans exported over OTLP/HTTP to a receiver the test starts,
children of the client's ``traceparent``, with the GenAI attributes; content only for an
organization that opted in; streams, cache hits and upstream failures. Driven with the
official OpenAI SDK."""

from __future__ import annotations

import secrets
import time
from contextlib import contextmanager

import openai
import pytest

from common.testing import free_port, live_server
from proxy.tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.live

PROMPT = "Name three colours of the rainbow, please."


@pytest.fixture
def receiver():
    receiver = OtlpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@contextmanager
def _server(route_to, tmp_path, endpoint: str, **env):
    route_to("team-model", ("gpt-4o-mini", 0))
    route_to("broken-model", ("fake-fail-500", 0))
    server_env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-token=t0ken",
        "OTEL_SERVICE_NAME": "proxy-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # milliseconds: export promptly for the test
        "UPSTREAM_MAX_RETRIES": "1",
        "UPSTREAM_BACKOFF_BASE": "0.01",
        "ROUTE_CACHE_SECONDS": "0",
        "LOG_FILE": "",
        **env,
    }
    with live_server(env=server_env, log_path=tmp_path / "server.log") as base_url:
        yield base_url


def _client(base_url: str, key: str, trace_id: str, parent_id: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{base_url}/v1",
        api_key=key,
        max_retries=0,
        default_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
    )


def _ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def _one(spans, name_start: str):
    found = [s for s in spans if s.name.startswith(name_start)]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def test_a_chat_is_traced_under_the_clients_traceparent_with_genai_attributes(
    receiver, route_to, tmp_path, alice_key, org_a, fake_upstream
):
    trace_id, parent_id = _ids()
    with _server(route_to, tmp_path, receiver.endpoint) as base_url:
        client = _client(base_url, alice_key, trace_id, parent_id)
        completion = client.chat.completions.create(
            model="team-model",
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"X-Request-Id": "req-traced-000001", "x-synthlang-cache": "off"},
        )
        spans = receiver.trace(
            trace_id,
            names={"POST /v1/chat/completions", "admission", "chat gpt-4o-mini", "accounting"},
        )

    server = _one(spans, "POST /v1/chat/completions")
    assert server.kind == "server" and server.parent_id == parent_id
    assert server.service == "proxy-under-test"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["synthlang.request_id"] == "req-traced-000001"
    admission = _one(spans, "admission")
    attempt = _one(spans, "chat gpt-4o-mini")
    accounting = _one(spans, "accounting")
    assert admission.parent_id == attempt.parent_id == accounting.parent_id == server.span_id
    # Each stage's hook is its own span, inside admission, in the list's order.
    stages = [s for s in spans if s.name.startswith("stage ")]
    assert {s.name for s in stages} >= {"stage cache on_request", "stage compression on_request"}
    assert all(s.parent_id == admission.span_id for s in stages if s.name.endswith("on_request"))
    assert all(
        s.attributes["synthlang.stage.answered"] is False for s in stages if "on_req" in s.name
    )

    assert attempt.kind == "client"
    assert attempt.attributes["gen_ai.operation.name"] == "chat"
    assert attempt.attributes["gen_ai.provider.name"] == "openai"
    assert attempt.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attempt.attributes["gen_ai.response.model"] == completion.model
    assert attempt.attributes["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert attempt.attributes["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert accounting.attributes["gen_ai.usage.output_tokens"] == (
        completion.usage.completion_tokens
    )
    assert accounting.attributes["synthlang.organization.id"] == org_a.id
    assert accounting.attributes["synthlang.cache"] == "off"
    assert accounting.attributes["synthlang.cost_micros"] >= 0
    assert "synthlang.tokens_saved" in accounting.attributes
    # The organization did not opt in: no prompt, no completion anywhere.
    assert all(not s.events for s in spans if s.name != "admission")
    # The exporter sent the configured headers.
    assert receiver.headers[0]["x-collector-token"] == "t0ken"

    # The upstream saw the attempt span as its parent, in the client's trace.
    upstream = fake_upstream.stats()["last_trace"]["gpt-4o-mini"]
    assert upstream["traceparent"] == f"00-{trace_id}-{attempt.span_id}-01"
    assert upstream["x-request-id"] == "req-traced-000001"


def test_content_events_only_for_an_organization_that_opted_in(
    receiver, route_to, tmp_path, alice_key, org_a, fake_upstream
):
    org_a.trace_content = True
    org_a.save(update_fields=["trace_content"])
    trace_id, parent_id = _ids()
    with _server(route_to, tmp_path, receiver.endpoint) as base_url:
        client = _client(base_url, alice_key, trace_id, parent_id)
        completion = client.chat.completions.create(
            model="team-model",
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"x-synthlang-cache": "off"},
        )
        stream_trace, stream_parent = _ids()
        stream = _client(base_url, alice_key, stream_trace, stream_parent)
        streamed = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in stream.chat.completions.create(
                model="team-model",
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                extra_headers={"x-synthlang-cache": "off"},
            )
            if chunk.choices
        )
        spans = receiver.trace(trace_id, names={"chat gpt-4o-mini", "accounting"})
        stream_spans = receiver.trace(
            stream_trace, names={"chat gpt-4o-mini", "stream gpt-4o-mini", "accounting"}
        )

    events = dict(_one(spans, "chat gpt-4o-mini").events)
    assert PROMPT in events["gen_ai.content.prompt"]["gen_ai.input.messages"]
    assert (
        completion.choices[0].message.content
        in (events["gen_ai.content.completion"]["gen_ai.output.messages"])
    )
    stream_events = dict(_one(stream_spans, "stream gpt-4o-mini").events)
    assert stream_events["gen_ai.content.completion"]["gen_ai.output.messages"] == streamed
    assert streamed


def test_a_stream_has_its_stream_span_and_usage(
    receiver, route_to, tmp_path, alice_key, fake_upstream
):
    trace_id, parent_id = _ids()
    with _server(route_to, tmp_path, receiver.endpoint) as base_url:
        client = _client(base_url, alice_key, trace_id, parent_id)
        chunks = list(
            client.chat.completions.create(
                model="team-model",
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"x-synthlang-cache": "off"},
            )
        )
        spans = receiver.trace(
            trace_id,
            names={"POST /v1/chat/completions", "chat gpt-4o-mini", "stream gpt-4o-mini"}
            | {"accounting"},
        )
    usage = chunks[-1].usage
    server = _one(spans, "POST /v1/chat/completions")
    relay = _one(spans, "stream gpt-4o-mini")
    assert relay.parent_id == server.span_id and server.parent_id == parent_id
    assert relay.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert relay.attributes["synthlang.stream.chunks"] >= 2
    accounting = _one(spans, "accounting")
    assert accounting.attributes["synthlang.stream"] is True
    assert accounting.attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert not relay.events  # no content: the organization did not opt in


def test_a_cache_hit_has_no_upstream_span_and_says_hit(
    receiver, route_to, tmp_path, alice_key, fake_upstream
):
    question = [{"role": "user", "content": f"What is the capital of Portugal? {time.time()}"}]
    with _server(route_to, tmp_path, receiver.endpoint) as base_url:
        miss_trace, parent_id = _ids()
        _client(base_url, alice_key, miss_trace, parent_id).chat.completions.create(
            model="team-model", messages=question
        )
        for _ in range(50):  # the answer is stored after the response
            hit_trace, _ = _ids()
            raw = _client(
                base_url, alice_key, hit_trace, parent_id
            ).chat.completions.with_raw_response.create(model="team-model", messages=question)
            if raw.headers["x-synthlang-cache"] == "hit":
                break
            time.sleep(0.1)
        assert raw.headers["x-synthlang-cache"] == "hit"
        spans = receiver.trace(hit_trace, names={"admission", "accounting"})
        time.sleep(0.3)  # an upstream span, were there one, would have come in the batch
        spans = [s for s in receiver.spans if s.trace_id == hit_trace]
    assert _one(spans, "admission").attributes["synthlang.cache"] == "hit"
    # The cache stage answered; no later stage ran.
    assert _one(spans, "stage cache on_request").attributes["synthlang.stage.answered"] is True
    assert not [s for s in spans if s.name == "stage compression on_request"]
    accounting = _one(spans, "accounting")
    assert accounting.attributes["synthlang.cache"] == "hit"
    assert accounting.attributes["synthlang.cost_micros"] == 0
    assert not [s for s in spans if s.kind == "client"]


def test_each_failed_upstream_attempt_is_its_own_error_span(
    receiver, route_to, tmp_path, alice_key, fake_upstream
):
    trace_id, parent_id = _ids()
    with _server(route_to, tmp_path, receiver.endpoint) as base_url:
        client = _client(base_url, alice_key, trace_id, parent_id)
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(
                model="broken-model", messages=[{"role": "user", "content": PROMPT}]
            )
        spans = receiver.wait_for(
            lambda spans: (
                len([s for s in spans if s.trace_id == trace_id and s.kind == "client"]) == 2
                and any(s.name == "accounting" and s.trace_id == trace_id for s in spans)
                # The server span ends after the answer is sent: it may come in a later batch.
                and any(
                    s.name.startswith("POST /v1/chat/completions") and s.trace_id == trace_id
                    for s in spans
                )
            )
        )
    spans = [s for s in spans if s.trace_id == trace_id]
    attempts = sorted(
        (s for s in spans if s.kind == "client"), key=lambda s: s.attributes["synthlang.retry"]
    )
    assert [s.attributes["synthlang.retry"] for s in attempts] == [0, 1]  # one retry
    assert all(s.status == 2 and s.attributes.get("error.type") for s in attempts)
    accounting = _one(spans, "accounting")
    assert accounting.attributes["error.type"] == raised.value.code
    server = _one(spans, "POST /v1/chat/completions")
    assert server.attributes["http.response.status_code"] == raised.value.status_code


def test_an_exporter_that_is_down_never_affects_a_request(
    route_to, tmp_path, alice_key, fake_upstream
):
    nobody = f"http://127.0.0.1:{free_port()}"
    with _server(route_to, tmp_path, nobody, OTEL_EXPORTER_OTLP_TIMEOUT="1") as base_url:
        trace_id, parent_id = _ids()
        client = _client(base_url, alice_key, trace_id, parent_id)
        for _ in range(3):
            completion = client.chat.completions.create(
                model="team-model",
                messages=[{"role": "user", "content": PROMPT}],
                extra_headers={"x-synthlang-cache": "off"},
            )
            assert completion.choices[0].message.content
        time.sleep(0.3)  # the exporter has tried and failed by now
        raw = client.chat.completions.with_raw_response.create(
            model="team-model", messages=[{"role": "user", "content": PROMPT}]
        )
        assert raw.http_response.status_code == 200
