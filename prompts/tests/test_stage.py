"""Requests that name a stored prompt, through the whole pipeline in process."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError
from django.test import AsyncClient

from billing import usage
from billing.models import UsageEvent
from prompts import selectors, services
from proxy import gateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _offline(settings):
    settings.OPENAI_API_KEY = ""  # the offline fake provider answers
    settings.USAGE_FLUSH_IN_BACKGROUND = False
    usage.memory_buffer.clear()
    yield
    usage.memory_buffer.clear()


def _post(key: str, body: dict, **headers):
    async def request():
        response = await AsyncClient().post(
            "/v1/chat/completions",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}", **headers},
        )
        await asyncio.gather(*list(gateway._background))  # accounting runs after the answer
        return response

    response = async_to_sync(request)()
    usage.usage_flush_run()
    return response


def _answer(response) -> str:
    assert response.status_code == 200, response.content
    return response.json()["choices"][0]["message"]["content"]


def _event(response) -> UsageEvent:
    return UsageEvent.objects.get(request_id=response["x-request-id"])


PRODUCTION = {"id": "greeting", "label": "production", "variables": {"tone": "kind", "name": "Ada"}}


def test_a_prompt_by_label_is_rendered_with_its_variables(greeting, bob_key):
    response = _post(bob_key, {"prompt": PRODUCTION}, **{"x-synthlang-cache": "off"})

    assert _answer(response).endswith("Greet Ada warmly")
    event = _event(response)
    assert event.annotations == {
        "prompts": {"prompt": "greeting", "version": 1, "label": "production"}
    }
    assert event.model == "gpt-4o"  # v1 names no model: the request's (here the default)


def test_a_version_number_and_its_own_model(greeting, bob_key):
    body = {"prompt": {**PRODUCTION, "label": None, "version": 2}, "model": "gpt-4o"}
    body["prompt"].pop("label")
    response = _post(bob_key, body, **{"x-synthlang-cache": "off"})

    assert _answer(response).endswith("Say hi to Ada from the v2 prompt")
    assert _event(response).model == "gpt-4o-mini"  # the version's model
    assert _event(response).annotations["prompts"] == {"prompt": "greeting", "version": 2}


def test_without_version_or_label_the_latest_version_is_used(greeting, bob_key):
    body = {"prompt": {"id": greeting.pk, "variables": {"tone": "x", "name": "Bo"}}}

    assert _answer(_post(bob_key, body)).endswith("Say hi to Bo from the v2 prompt")


def test_request_messages_come_after_the_prompts(greeting, bob_key):
    body = {"prompt": PRODUCTION, "messages": [{"role": "user", "content": "And then thanks"}]}

    assert _answer(_post(bob_key, body)).endswith("And then thanks")


def test_the_versions_parameters_are_defaults_the_request_overrides(greeting, bob_key):
    services.prompt_version_create(
        prompt=greeting,
        messages=[{"role": "user", "content": "one two three four five six"}],
        parameters={"max_tokens": 2},
        actor=None,
    )
    short = _answer(_post(bob_key, {"prompt": {"id": "greeting", "version": 3}}))
    longer = _answer(_post(bob_key, {"prompt": {"id": "greeting", "version": 3}, "max_tokens": 9}))

    assert len(short.split()) == 2
    assert len(longer.split()) == 9


@pytest.mark.parametrize(
    ("reference", "param", "words"),
    [
        ({"id": "nope"}, "prompt.id", "Unknown prompt 'nope'"),
        ({"id": "greeting", "version": 7}, "prompt.version", "no version 7"),
        ({"id": "greeting", "label": "canary"}, "prompt.label", "no label 'canary'"),
        ({"id": "greeting", "label": "production"}, "prompt.variables.tone", "tone, name"),
        ({"id": "greeting", "version": 1, "label": "production"}, "prompt.version", "not both"),
        ({"id": "greeting", "extra": 1}, "prompt.extra", "Unknown field"),
        ("greeting", "prompt", "object"),
    ],
)
def test_a_bad_reference_is_an_openai_400_naming_the_field(
    greeting, bob_key, reference, param, words
):
    response = _post(bob_key, {"prompt": reference})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]


def test_another_organizations_prompt_is_an_unknown_prompt(greeting, charlie_key):
    by_name = _post(charlie_key, {"prompt": PRODUCTION})
    by_id = _post(charlie_key, {"prompt": {**PRODUCTION, "id": greeting.pk}})

    for response in (by_name, by_id):
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "prompt.id"
        assert "Unknown prompt" in response.json()["error"]["message"]


def test_a_body_with_neither_prompt_nor_messages_is_refused(bob_key):
    response = _post(bob_key, {"model": "gpt-4o"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_moving_the_label_changes_what_the_next_request_renders(greeting, bob_key):
    first = _answer(_post(bob_key, {"prompt": PRODUCTION}))
    services.prompt_label_set(
        prompt=greeting, label="production", version=greeting.versions.get(number=2), actor=None
    )
    second = _post(bob_key, {"prompt": PRODUCTION})

    assert first.endswith("Greet Ada warmly")
    assert _answer(second).endswith("Say hi to Ada from the v2 prompt")
    assert _event(second).annotations["prompts"]["version"] == 2


def test_the_cache_never_answers_one_version_with_another(greeting, bob_key, settings):
    settings.ENABLE_CACHE = True
    first = _post(bob_key, {"prompt": PRODUCTION})
    again = _post(bob_key, {"prompt": PRODUCTION})
    services.prompt_label_set(
        prompt=greeting, label="production", version=greeting.versions.get(number=2), actor=None
    )
    moved = _post(bob_key, {"prompt": PRODUCTION})

    assert first["x-synthlang-cache"] == "miss"
    assert again["x-synthlang-cache"] == "hit"
    assert _answer(again) == _answer(first)
    assert moved["x-synthlang-cache"] == "miss"
    assert _answer(moved).endswith("Say hi to Ada from the v2 prompt")


def test_with_the_database_down_the_client_gets_a_clear_503(greeting, bob_key, monkeypatch):
    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "prompt_find", down)
    response = _post(bob_key, {"prompt": PRODUCTION})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "prompt library" in response.json()["error"]["message"]
    assert response["retry-after"]


def test_a_request_without_a_prompt_is_untouched(greeting, bob_key):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "plain"}]}
    response = _post(bob_key, body)

    assert _answer(response).endswith("plain")
    assert _event(response).annotations == {}
