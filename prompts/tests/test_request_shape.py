"""The chat serializer's one change for the library: a body may name a prompt instead of
carrying messages (the openai SDK sends ``messages=[]`` then)."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from proxy.serializers import ChatCompletionRequestSerializer, validate_request

PROMPT = {"id": "greeting"}


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": PROMPT},
        {"prompt": PROMPT, "messages": []},
        {"prompt": PROMPT, "messages": [{"role": "user", "content": "more"}], "model": ""},
    ],
)
def test_a_body_naming_a_prompt_needs_no_messages(body):
    validate_request(ChatCompletionRequestSerializer, body)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"model": "gpt-4o"},
        {"messages": []},
        {"prompt": PROMPT, "messages": [{"role": "robot", "content": "x"}]},
        {"prompt": PROMPT, "temperature": 5},
    ],
)
def test_without_a_prompt_messages_are_still_required_and_checked(body):
    with pytest.raises(ValidationError) as error:
        validate_request(ChatCompletionRequestSerializer, body)

    with pytest.raises(ValidationError) as whole:
        ChatCompletionRequestSerializer().run_validation(body)
    assert error.value.detail == whole.value.detail


def test_a_prompt_is_refused_when_the_prompts_stage_is_not_configured(settings):
    settings.SYNTHLANG_STAGES = [
        path for path in settings.SYNTHLANG_STAGES if not path.startswith("prompts.")
    ]
    with pytest.raises(ValidationError) as error:
        validate_request(ChatCompletionRequestSerializer, {"prompt": PROMPT})
    assert "prompt" in error.value.detail
