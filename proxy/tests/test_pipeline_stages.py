"""Stages plugged in through settings: the runner's order, refusals in each wire format,
answers, response hooks, stream filters and annotations in the usage event."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from billing import usage
from billing.models import UsageEvent
from proxy import gateway

STAGES = "proxy.tests.pipeline_stages."
BUILT_IN = [
    "proxy.stages.cache.ResponseCacheStage",
    "proxy.stages.budget.BudgetStage",
    "proxy.stages.translation.TranslateStage",
    "proxy.stages.compression.CompressionStage",
]


@pytest.fixture(autouse=True)
def _offline_with_stages(settings):
    settings.OPENAI_API_KEY = ""  # the offline fake provider answers
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    settings.SYNTHLANG_STAGES = [
        STAGES + "Renamer",
        STAGES + "Refuser",
        STAGES + "Shouter",
        STAGES + "Answerer",
        STAGES + "RedisGone",
        *BUILT_IN,
    ]
    usage.memory_buffer.clear()
    yield
    usage.memory_buffer.clear()


def _post(path: str, key: str, body: dict, *, stream: bool = False, **headers):
    async def request():
        response = await AsyncClient().post(
            path,
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}", **headers},
        )
        text = ""
        if stream:
            text = b"".join([part async for part in response.streaming_content]).decode()
        await asyncio.gather(*list(gateway._background))  # accounting runs after the answer
        return response, text

    response, text = async_to_sync(request)()
    usage.usage_flush_run()
    return response, text


def _chat(content: str, **extra) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}], **extra}


def _stream_text(sse: str) -> tuple[str, int]:
    pieces = []
    for line in sse.splitlines():
        if not line.startswith("data: {"):
            continue
        chunk = json.loads(line[len("data: ") :])
        for choice in chunk.get("choices") or []:
            if choice["delta"].get("content"):
                pieces.append(choice["delta"]["content"])
    return "".join(pieces), len(pieces)


@pytest.mark.django_db(transaction=True)
def test_a_response_stage_changes_the_answer_and_its_annotations_reach_the_usage_event(
    org_a, bob_key
):
    response, _ = _post(
        "/v1/chat/completions", bob_key, _chat("hello"), **{"x-synthlang-cache": "off"}
    )

    assert response.status_code == 200
    content = response.json()["choices"][0]["message"]["content"]
    assert content and content == content.upper()
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert event.annotations == {"refuser": {"checked": True}, "shouter": {"level": 3, "on": True}}
    assert event.completion_tokens > 0


@pytest.mark.django_db(transaction=True)
def test_a_prepare_hook_renames_the_model_before_admission(org_a, bob_key):
    response, _ = _post(
        "/v1/chat/completions",
        bob_key,
        _chat("hello", model="stage-alias"),
        **{"x-synthlang-cache": "off"},
    )

    assert response.status_code == 200
    assert UsageEvent.objects.get(request_id=response["x-request-id"]).model == "gpt-4o"


@pytest.mark.django_db(transaction=True)
def test_a_stage_that_answers_ends_the_walk_and_costs_nothing(org_a, bob_key):
    response, _ = _post("/v1/chat/completions", bob_key, _chat("ping"))

    assert response.status_code == 200
    # Shouter ran before the answering stage, so it sees the answer.
    assert response.json()["choices"][0]["message"]["content"] == "PONG FROM A STAGE"
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert event.cost_micros == 0
    assert event.annotations["answerer"] == {"answered": True}
    assert event.provider == ""  # no upstream was called


@pytest.mark.django_db(transaction=True)
def test_a_stage_answer_streams_through_the_stream_filters(org_a, bob_key):
    response, sse = _post("/v1/chat/completions", bob_key, _chat("ping", stream=True), stream=True)

    assert response.status_code == 200
    text, pieces = _stream_text(sse)
    assert text == "PONG FROM A STAGE"
    assert sse.rstrip().endswith("data: [DONE]")


@pytest.mark.django_db(transaction=True)
def test_a_stream_filter_holds_text_back_across_two_chunks(org_a, bob_key, settings):
    body = _chat("tell me a story", stream=True)
    headers = {"x-synthlang-cache": "off"}
    settings.SYNTHLANG_STAGES = BUILT_IN
    _, plain_sse = _post("/v1/chat/completions", bob_key, body, stream=True, **headers)
    plain, plain_pieces = _stream_text(plain_sse)
    settings.SYNTHLANG_STAGES = [STAGES + "Shouter", *BUILT_IN]

    response, sse = _post("/v1/chat/completions", bob_key, body, stream=True, **headers)

    assert response.status_code == 200
    text, pieces = _stream_text(sse)
    assert plain_pieces >= 3
    assert text == plain.upper()
    assert pieces == (plain_pieces + 1) // 2  # two chunks released as one
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert event.completion_tokens > 0 and event.annotations["shouter"]["on"] is True


@pytest.mark.django_db(transaction=True)
def test_a_cache_hit_goes_through_the_response_stages_too(org_a, bob_key, settings):
    # Listed before the cache: its on_request runs on a hit, so it sees the stored answer.
    settings.SYNTHLANG_STAGES = [STAGES + "Shouter", *BUILT_IN]
    body = _chat("what is the capital of france")
    first, _ = _post("/v1/chat/completions", bob_key, body)
    second, _ = _post("/v1/chat/completions", bob_key, body)
    streamed, sse = _post("/v1/chat/completions", bob_key, {**body, "stream": True}, stream=True)

    assert second["x-synthlang-cache"] == "hit"
    answer = first.json()["choices"][0]["message"]["content"]
    assert answer == answer.upper()
    assert second.json()["choices"][0]["message"]["content"] == answer
    assert streamed["x-synthlang-cache"] == "hit"
    assert _stream_text(sse)[0] == answer


@pytest.mark.django_db(transaction=True)
def test_a_stage_refusal_is_an_openai_error_on_chat(org_a, bob_key):
    response, _ = _post("/v1/chat/completions", bob_key, _chat("refuse me"))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert response.json()["error"]["message"] == "A test stage refused this request."
    event = UsageEvent.objects.get(request_id=response["x-request-id"])
    assert (event.status_code, event.error_code) == (403, "permission_denied")


@pytest.mark.django_db(transaction=True)
def test_a_stage_refusal_is_an_anthropic_error_on_messages(org_a, bob_key):
    body = {
        "model": "gpt-4o",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "refuse me"}],
    }
    response, _ = _post(
        "/v1/messages", bob_key, body, **{"x-api-key": bob_key, "anthropic-version": "2023-06-01"}
    )

    assert response.status_code == 403
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "permission_error"
    assert payload["error"]["message"] == "A test stage refused this request."


@pytest.mark.django_db(transaction=True)
def test_a_stage_refusal_is_a_responses_error_on_responses(org_a, bob_key):
    response, _ = _post(
        "/v1/responses", bob_key, {"model": "gpt-4o", "input": "refuse me", "store": False}
    )

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert error["message"] == "A test stage refused this request."


@pytest.mark.django_db(transaction=True)
def test_a_response_stage_runs_on_the_responses_and_messages_adapters(org_a, bob_key):
    responses, _ = _post(
        "/v1/responses",
        bob_key,
        {"model": "gpt-4o", "input": "hello", "store": False},
        **{"x-synthlang-cache": "off"},
    )
    messages, _ = _post(
        "/v1/messages",
        bob_key,
        {"model": "gpt-4o", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]},
        **{"x-api-key": bob_key, "anthropic-version": "2023-06-01", "x-synthlang-cache": "off"},
    )

    assert responses.status_code == 200 and messages.status_code == 200
    text = responses.json()["output"][0]["content"][0]["text"]
    assert text and text == text.upper()
    message_text = messages.json()["content"][0]["text"]
    assert message_text and message_text == message_text.upper()
    assert UsageEvent.objects.get(request_id=messages["x-request-id"]).annotations["shouter"]


@pytest.mark.django_db(transaction=True)
def test_a_stage_listed_after_the_cache_never_sees_a_hit(org_a, bob_key, settings):
    settings.SYNTHLANG_STAGES = [*BUILT_IN, STAGES + "Shouter"]
    body = _chat("what is the capital of norway")
    first, _ = _post("/v1/chat/completions", bob_key, body)
    second, _ = _post("/v1/chat/completions", bob_key, body)

    fresh = first.json()["choices"][0]["message"]["content"]
    assert fresh == fresh.upper()  # it ran on the miss
    assert second["x-synthlang-cache"] == "hit"
    stored = second.json()["choices"][0]["message"]["content"]
    assert stored != stored.upper()  # the cache keeps the upstream's answer; it did not run
    event = UsageEvent.objects.get(request_id=second["x-request-id"])
    assert "shouter" not in event.annotations and event.cost_micros == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path, body, headers",
    [
        ("/v1/chat/completions", _chat("redis is down"), {}),
        ("/v1/responses", {"model": "gpt-4o", "input": "redis is down", "store": False}, {}),
        (
            "/v1/messages",
            {
                "model": "gpt-4o",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "redis is down"}],
            },
            {"anthropic-version": "2023-06-01"},
        ),
    ],
)
def test_an_outage_inside_the_pipeline_is_a_503_on_every_endpoint(
    org_a, bob_key, path, body, headers
):
    """Not a 500: an unreachable Redis or database is a 503 the client may retry, whichever
    adapter ran the call, and the call is still accounted."""
    response, _ = _post(path, bob_key, body, **headers)

    assert response.status_code == 503
    assert "error" in response.json()
    assert UsageEvent.objects.filter(status_code=503).count() == 1
