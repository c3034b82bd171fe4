"""Request validation checks only the fields a request carries (and the required ones), with
exactly the verdicts and messages of the whole serializer."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from proxy import serializers

CHAT = serializers.ChatCompletionRequestSerializer
COMPLETION = serializers.CompletionRequestSerializer
EMBEDDING = serializers.EmbeddingRequestSerializer
COMPRESS = serializers.CompressRequestSerializer

HELLO = [{"role": "user", "content": "hello"}]

CASES = [
    (CHAT, {"messages": HELLO}),
    (CHAT, {"model": "gpt-4o", "messages": HELLO, "tools": [{"type": "function"}], "seed": 7}),
    (CHAT, {"messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}),
    (CHAT, {"messages": HELLO, "temperature": 3}),
    (CHAT, {"messages": HELLO, "temperature": None, "top_p": -1}),
    (CHAT, {"messages": HELLO, "n": 0, "max_tokens": "many"}),
    (CHAT, {"messages": HELLO, "stream": "yes please"}),
    (CHAT, {"messages": HELLO, "stream_options": {"include_usage": "maybe"}}),
    (CHAT, {"messages": HELLO, "model": 5}),
    (CHAT, {"messages": HELLO, "max_completion_tokens": 0}),
    (CHAT, {"messages": []}),
    (CHAT, {"messages": "hello"}),
    (CHAT, {"messages": [{"role": "robot", "content": "beep"}]}),
    (CHAT, {"messages": [{"content": "no role"}]}),
    (CHAT, {"messages": [{"role": "user", "content": 5}]}),
    (CHAT, {"messages": [5]}),
    (CHAT, {"model": "gpt-4o"}),
    (CHAT, {}),
    (COMPLETION, {"prompt": "Once upon a time"}),
    (COMPLETION, {"prompt": [], "max_tokens": 5}),
    (COMPLETION, {"max_tokens": 5}),
    (EMBEDDING, {"input": "text", "encoding_format": "float"}),
    (EMBEDDING, {"input": ["a", [1, 2]], "dimensions": 0}),
    (EMBEDDING, {"input": "", "encoding_format": "hex"}),
    (COMPRESS, {"text": "Please could you help"}),
    (COMPRESS, {"text": "a", "messages": HELLO}),
    (COMPRESS, {"level": "extreme"}),
    (COMPRESS, {}),
]


def verdict(validate):
    try:
        validate()
    except ValidationError as error:
        return error.detail
    return "valid"


@pytest.mark.parametrize(("serializer_class", "body"), CASES)
def test_same_verdict_and_messages_as_the_whole_serializer(serializer_class, body):
    whole = verdict(lambda: serializer_class().run_validation(body))
    assert verdict(lambda: serializers.validate_request(serializer_class, body)) == whole


def test_the_cases_cover_valid_and_invalid_requests():
    verdicts = [verdict(lambda c=c, b=b: c().run_validation(b)) for c, b in CASES]
    assert "valid" in verdicts and any(v != "valid" for v in verdicts)


def test_absent_optional_fields_are_not_walked():
    validator = serializers._validator_for(CHAT, frozenset({"messages", "temperature"}))
    assert set(validator.fields) == {"messages", "temperature"}


def test_an_answer_with_half_an_emoji_is_still_written_as_json():
    """An upstream may escape a lone surrogate; it has no UTF-8 form, so it leaves escaped."""
    import json

    from proxy.views import _dumps

    written = _dumps({"text": "cut \ud83d", "city": "東京"})
    assert json.loads(written) == {"text": "cut \ud83d", "city": "東京"}
    assert _dumps({"city": "東京"}) == '{"city":"東京"}'.encode()
