"""Every field the proxy acts on is checked, and a wrong one is OpenAI's 400, never a 500
or a request passed on with a value of the wrong type."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from proxy import gateway

USER = {"role": "user", "content": "hello"}


def _post(key: str, body: dict, path: str = "/v1/chat/completions"):
    async def post():
        response = await AsyncClient().post(
            path,
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}", "x-synthlang-cache": "off"},
        )
        await asyncio.gather(*list(gateway._background))
        return response

    return async_to_sync(post)()


BAD_CHAT_BODIES = [
    ({"model": 5, "messages": [USER]}, "model"),
    ({"model": ["gpt-4o"], "messages": [USER]}, "model"),
    ({"model": {"name": "gpt-4o"}, "messages": [USER]}, "model"),
    ({"messages": [USER], "stream": "yes"}, "stream"),
    ({"messages": [USER], "stream": 1}, "stream"),
    ({"messages": [USER], "stream_options": {"include_usage": "true"}}, "stream_options"),
    ({"messages": [USER], "max_tokens": "100"}, "max_tokens"),
    ({"messages": [USER], "max_tokens": 10.5}, "max_tokens"),
    ({"messages": [USER], "temperature": "0.2"}, "temperature"),
    ({"messages": [USER], "n": True}, "n"),
    ({"messages": [{"role": "user"}]}, "messages.0.content"),
    ({"messages": [USER, {"role": "user", "content": None}]}, "messages.1.content"),
    ({"messages": [{"role": "system", "content": []}, USER]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 7}]}]}, "m"),
    ({"messages": [{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}]}, "m"),
    ({"messages": [{"role": "user", "content": [{"type": 3}]}]}, "messages"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("body", "param"), BAD_CHAT_BODIES)
def test_a_wrongly_typed_field_is_openais_400(alice_key, body, param):
    response = _post(alice_key, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"].startswith(param[:1])
    assert error["param"].startswith(param) or len(param) == 1


GOOD_CHAT_BODIES = [
    {"messages": [USER], "stream": False, "max_tokens": 5, "temperature": 0, "top_p": 1},
    {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                    {"type": "file", "file": {"file_id": "file-1"}},
                ],
            },
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
            {"role": "assistant", "content": None, "tool_calls": []},
            USER,
        ]
    },
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("body", GOOD_CHAT_BODIES)
def test_the_content_parts_openai_documents_are_accepted(alice_key, body):
    response = _post(alice_key, body)
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "body",
    [{"model": 5, "prompt": "hi"}, {"prompt": "hi", "stream": "no"}, {"prompt": "hi", "n": "2"}],
)
def test_legacy_completions_check_the_same_fields(alice_key, body):
    assert _post(alice_key, body, "/v1/completions").status_code == 400


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("body", [{"model": 5, "input": "hi"}, {"input": "hi", "dimensions": "8"}])
def test_embeddings_check_the_same_fields(alice_key, body):
    assert _post(alice_key, body, "/v1/embeddings").status_code == 400
