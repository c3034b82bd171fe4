"""OpenAI wire format: validate the fields the proxy acts on, pass everything else through.

The serializers check types and ranges only; the original request body (with every
field we do not know, such as ``tools``, ``response_format``, ``seed``) is what goes
upstream.
"""

import functools

from rest_framework import serializers

from proxy.pipeline.registry import active_stages

CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
COMPRESSION_LEVELS = ("off", "low", "medium", "high")

# The content part types OpenAI's chat completions take, by role: a user sends text,
# images, audio and files; an assistant's earlier turn holds text or a refusal; the
# system, developer and tool turns hold text.
USER_PART_TYPES = ("text", "image_url", "input_audio", "file")
CONTENT_PART_TYPES = {
    "user": USER_PART_TYPES,
    "assistant": ("text", "refusal"),
    "system": ("text",),
    "developer": ("text",),
    "tool": ("text",),
    "function": ("text",),
}
# Roles whose turn may have no content: an assistant turn that only calls tools.
CONTENT_OPTIONAL_ROLES = ("assistant", "function")


# --- Strict fields ----------------------------------------------------------------------
# DRF's fields coerce: "5" is an integer, "yes" a boolean, 5 a string. The proxy passes the
# client's body on unchanged and acts on it (the model picks a route, stream picks the
# response's shape), so a value must already have the type it claims.


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = StrictBooleanField(required=False)


def _check_part(part: dict, index: int) -> None:
    kind = part["type"]
    expected = {
        "text": ("text", str),
        "refusal": ("refusal", str),
        "image_url": ("image_url", dict),
        "input_audio": ("input_audio", dict),
        "file": ("file", dict),
    }[kind]
    name, type_ = expected
    if not isinstance(part.get(name), type_):
        kind_word = "a string" if type_ is str else "an object"
        raise serializers.ValidationError(
            f"part {index} of type {kind!r} needs {name!r} as {kind_word}"
        )
    if kind == "image_url" and not isinstance(part["image_url"].get("url"), str):
        raise serializers.ValidationError(f"part {index}: image_url.url must be a string")
    if kind == "input_audio" and not isinstance(part["input_audio"].get("data"), str):
        raise serializers.ValidationError(f"part {index}: input_audio.data must be a string")


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=CHAT_ROLES)
    content = serializers.JSONField(required=False, allow_null=True)

    def validate_content(self, value):
        if value is None or isinstance(value, str):
            return value
        if not isinstance(value, list) or not all(
            isinstance(part, dict) and isinstance(part.get("type"), str) for part in value
        ):
            raise serializers.ValidationError("must be a string or a list of content parts")
        return value

    def validate(self, attrs):
        role = attrs["role"]
        content = attrs.get("content")
        if content is None or content == []:
            if role not in CONTENT_OPTIONAL_ROLES:
                raise serializers.ValidationError({"content": f"a {role} message needs content"})
            return attrs
        if isinstance(content, list):
            allowed = CONTENT_PART_TYPES[role]
            for index, part in enumerate(content):
                if part["type"] not in allowed:
                    raise serializers.ValidationError(
                        {
                            "content": f"part {index} has type {part['type']!r}; a {role} message "
                            f"takes {', '.join(allowed)}"
                        }
                    )
                try:
                    _check_part(part, index)
                except serializers.ValidationError as error:
                    raise serializers.ValidationError({"content": error.detail}) from None
        return attrs


class _GenerationSerializer(serializers.Serializer):
    model = StrictCharField(required=False, allow_blank=True, max_length=256)
    stream = StrictBooleanField(required=False, default=False)
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    n = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=128)


class ChatCompletionRequestSerializer(_GenerationSerializer):
    # Not required: a body that names a stored prompt (the ``prompts`` stage renders it)
    # may carry no messages of its own; a body with neither is refused below.
    messages = ChatMessageSerializer(many=True, allow_empty=False, required=False)
    max_completion_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)

    def to_internal_value(self, data):
        if "prompt" in data and data.get("messages") == []:
            # The openai SDK makes ``messages`` an argument: [] with a prompt means none.
            data = {key: value for key, value in data.items() if key != "messages"}
        if "prompt" in data and not any(stage.name == "prompts" for stage in active_stages()):
            # Without the stage nothing would render it: the request would go upstream with
            # no messages (or with a field the upstream does not know).
            raise serializers.ValidationError(
                {"prompt": ["Stored prompts are off on this proxy (no prompts stage)."]}
            )
        attrs = super().to_internal_value(data)
        if "messages" not in attrs and "prompt" not in data:
            raise serializers.ValidationError({"messages": ["This field is required."]})
        return attrs


TEXTS_OR_TOKENS = "a non-empty list of strings, of token ids, or of non-empty token-id lists"
# Token ids are indexes into a vocabulary: whole numbers from 0, far below 2**31.
MAX_TOKEN_ID = 2**31 - 1


def _token_ids(value) -> bool:
    return all(
        isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= MAX_TOKEN_ID
        for item in value
    )


def _texts_or_tokens(value) -> bool:
    """OpenAI's list forms of a prompt or an embedding input, one kind per list (a mixed
    list, a negative id or a boolean is none of them)."""
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(item, str) for item in value):
        return True
    if all(isinstance(item, list) for item in value):
        return all(item and _token_ids(item) for item in value)
    return _token_ids(value)


class CompletionRequestSerializer(_GenerationSerializer):
    prompt = serializers.JSONField()

    def validate_prompt(self, value):
        if isinstance(value, str) or _texts_or_tokens(value):
            return value
        raise serializers.ValidationError(f"must be a string or {TEXTS_OR_TOKENS}")


class EmbeddingRequestSerializer(serializers.Serializer):
    model = StrictCharField(required=False, allow_blank=True, max_length=256)
    input = serializers.JSONField()
    dimensions = StrictIntegerField(required=False, min_value=1)
    encoding_format = serializers.ChoiceField(choices=("float", "base64"), required=False)

    def validate_input(self, value):
        if (isinstance(value, str) and value) or _texts_or_tokens(value):
            return value
        raise serializers.ValidationError(f"must be a non-empty string or {TEXTS_OR_TOKENS}")


class CompressRequestSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    messages = ChatMessageSerializer(many=True, required=False, allow_empty=False)
    level = serializers.ChoiceField(choices=COMPRESSION_LEVELS, default="medium")
    model = StrictCharField(required=False, allow_blank=True, max_length=256)

    def validate(self, attrs):
        if ("text" in attrs) == ("messages" in attrs):
            raise serializers.ValidationError("send exactly one of 'text' or 'messages'")
        return attrs


class DecompressRequestSerializer(serializers.Serializer):
    data = serializers.CharField()


class TranslateRequestSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False)
    model = StrictCharField(required=False, allow_blank=True, max_length=256)


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
