"""OpenAI wire format: validate the fields the proxy acts on, pass everything else through.

The serializers check types and ranges only; the original request body (with every
field we do not know, such as ``tools``, ``response_format``, ``seed``) is what goes
upstream.
"""

import functools

from rest_framework import serializers

CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
COMPRESSION_LEVELS = ("off", "low", "medium", "high")


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(required=False)


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=CHAT_ROLES)
    content = serializers.JSONField(required=False, allow_null=True)

    def validate_content(self, value):
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(
            isinstance(part, dict) and "type" in part for part in value
        ):
            return value
        raise serializers.ValidationError("must be a string or a list of content parts")


class _GenerationSerializer(serializers.Serializer):
    model = serializers.CharField(required=False, allow_blank=True, max_length=256)
    stream = serializers.BooleanField(required=False, default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    max_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=128)


class ChatCompletionRequestSerializer(_GenerationSerializer):
    messages = ChatMessageSerializer(many=True, allow_empty=False)
    max_completion_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)


class CompletionRequestSerializer(_GenerationSerializer):
    prompt = serializers.JSONField()

    def validate_prompt(self, value):
        if isinstance(value, str):
            return value
        if (
            isinstance(value, list)
            and value
            and all(isinstance(p, str | int | list) for p in value)
        ):
            return value
        raise serializers.ValidationError("must be a string or a non-empty list")


class EmbeddingRequestSerializer(serializers.Serializer):
    model = serializers.CharField(required=False, allow_blank=True, max_length=256)
    input = serializers.JSONField()
    dimensions = serializers.IntegerField(required=False, min_value=1)
    encoding_format = serializers.ChoiceField(choices=("float", "base64"), required=False)

    def validate_input(self, value):
        if isinstance(value, str) and value:
            return value
        if (
            isinstance(value, list)
            and value
            and all(
                isinstance(item, str | int) or (isinstance(item, list) and item) for item in value
            )
        ):
            return value
        raise serializers.ValidationError("must be a non-empty string or a non-empty list")


class CompressRequestSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    messages = ChatMessageSerializer(many=True, required=False, allow_empty=False)
    level = serializers.ChoiceField(choices=COMPRESSION_LEVELS, default="medium")
    model = serializers.CharField(required=False, allow_blank=True, max_length=256)

    def validate(self, attrs):
        if ("text" in attrs) == ("messages" in attrs):
            raise serializers.ValidationError("send exactly one of 'text' or 'messages'")
        return attrs


class DecompressRequestSerializer(serializers.Serializer):
    data = serializers.CharField()


class TranslateRequestSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False)
    model = serializers.CharField(required=False, allow_blank=True, max_length=256)


# --- Validating a request ------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _field_names(serializer_class) -> frozenset[str]:
    return frozenset(serializer_class().fields)


@functools.lru_cache(maxsize=512)
def _validator_for(serializer_class, present: frozenset[str]) -> serializers.Serializer:
    """A ``serializer_class`` instance with the fields in ``present`` and the required ones.

    A serializer walks all its fields for every request, and each absent optional one costs
    a raised and caught ``SkipField``: most of the validation's time for a typical request,
    which carries three or four of the ten fields. Without them DRF checks exactly what it
    checked before, with the same messages. Built once per shape of request (instances are
    stateless under ``run_validation``, and a serializer deep-copies its fields when built).
    """
    serializer = serializer_class()
    for name in list(serializer.fields):
        if name not in present and not serializer.fields[name].required:
            del serializer.fields[name]
    return serializer


def validate_request(serializer_class, body: dict) -> None:
    """Check the fields of ``body`` that ``serializer_class`` declares; raises DRF's
    ValidationError. Fields it does not declare are the client's, passed on unchecked."""
    names = _field_names(serializer_class)
    present = frozenset(name for name in body if name in names)
    _validator_for(serializer_class, present).run_validation(body)
