"""Validation of Anthropic Messages requests (DRF serializers, as the OpenAI formats).

A request to be translated must hold only what has a chat equivalent; one passed through
to Anthropic is checked only for the fields the proxy itself acts on.
"""

from __future__ import annotations

from rest_framework import serializers

from proxy.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
)

ROLES = ("user", "assistant")
# The block types a turn may hold that have a chat equivalent. Thinking blocks from an
# earlier answer are accepted and left out: a chat upstream has no field for them.
BLOCK_TYPES = {
    "user": ("text", "image", "document", "tool_result"),
    "assistant": ("text", "tool_use", "thinking", "redacted_thinking"),
}


class MessageParamSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = serializers.JSONField()

    def validate(self, attrs):
        content = attrs["content"]
        if isinstance(content, str):
            return attrs
        if not isinstance(content, list) or not all(
            isinstance(block, dict) and isinstance(block.get("type"), str) for block in content
        ):
            raise serializers.ValidationError(
                {"content": "must be a string or a list of content blocks"}
            )
        allowed = BLOCK_TYPES[attrs["role"]]
        for index, block in enumerate(content):
            if block["type"] not in allowed:
                raise serializers.ValidationError(
                    {
                        "content": f"block {index} has type {block['type']!r}; a "
                        f"{attrs['role']} turn takes {', '.join(allowed)} here"
                    }
                )
            problem = _block_problem(block)
            if problem:
                raise serializers.ValidationError({"content": f"block {index}: {problem}"})
        return attrs


def _block_problem(block: dict) -> str:
    kind = block["type"]
    if kind == "text" and not isinstance(block.get("text"), str):
        return "a text block needs 'text' as a string"
    if kind == "image":
        source = block.get("source")
        if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
            return "an image block needs a base64 or url source"
    if kind == "document":
        source = block.get("source")
        kind_of_source = source.get("type") if isinstance(source, dict) else None
        if kind_of_source not in ("text", "base64", "content"):
            return (
                "a document block needs a text, base64 or content source here (a url "
                "source is read by Anthropic's own API only)"
            )
    if kind == "tool_use" and not (
        isinstance(block.get("id"), str)
        and isinstance(block.get("name"), str)
        and isinstance(block.get("input"), dict)
    ):
        return "a tool_use block needs 'id', 'name' and an 'input' object"
    if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        return "a tool_result block needs 'tool_use_id'"
    return ""


class ToolSerializer(serializers.Serializer):
    name = StrictCharField(max_length=128)
    description = StrictCharField(required=False, allow_blank=True)
    input_schema = serializers.DictField()
    type = StrictCharField(required=False)

    def to_internal_value(self, data):
        # Checked first: a server tool has no input_schema, and "input_schema is required"
        # would not tell the client what is wrong.
        if isinstance(data, dict) and data.get("type", "custom") != "custom":
            raise serializers.ValidationError(
                {
                    "type": f"server tools ({data['type']!r}) run on Anthropic's own API only; "
                    "this model takes client tools (name, description, input_schema)"
                }
            )
        return super().to_internal_value(data)


class ToolChoiceSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=("auto", "any", "tool", "none"))
    name = StrictCharField(required=False)
    disable_parallel_tool_use = StrictBooleanField(required=False)

    def validate(self, attrs):
        if attrs["type"] == "tool" and not attrs.get("name"):
            raise serializers.ValidationError({"name": "tool_choice of type 'tool' needs a name"})
        return attrs


class MetadataSerializer(serializers.Serializer):
    user_id = StrictCharField(required=False, allow_null=True, max_length=256)


class CountTokensRequestSerializer(serializers.Serializer):
    model = StrictCharField(max_length=256)
    messages = MessageParamSerializer(many=True, allow_empty=False)
    system = serializers.JSONField(required=False)
    tools = ToolSerializer(many=True, required=False)
    tool_choice = ToolChoiceSerializer(required=False)

    def validate_system(self, value):
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(
            isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
            for block in value
        ):
            return value
        raise serializers.ValidationError("must be a string or a list of text blocks")


class MessagesRequestSerializer(CountTokensRequestSerializer):
    # Required, as on Anthropic's API: the SDK sends it, and an answer's length is the
    # client's decision, not the proxy's.
    max_tokens = StrictIntegerField(min_value=1)
    stream = StrictBooleanField(required=False)
    stop_sequences = serializers.ListField(child=StrictCharField(), required=False)
    temperature = StrictFloatField(required=False, min_value=0, max_value=1)
    top_p = StrictFloatField(required=False, min_value=0, max_value=1)
    top_k = StrictIntegerField(required=False, min_value=0)
    metadata = MetadataSerializer(required=False)


class NativeMessageParamSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = serializers.JSONField()

    def validate_content(self, value):
        if isinstance(value, str) or (
            isinstance(value, list)
            and all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in value)
        ):
            return value
        raise serializers.ValidationError("must be a string or a list of content blocks")


class NativeCountTokensRequestSerializer(serializers.Serializer):
    model = StrictCharField(max_length=256)
    messages = NativeMessageParamSerializer(many=True, allow_empty=False)


class NativeMessagesRequestSerializer(serializers.Serializer):
    """For a route Anthropic serves: what the proxy itself acts on, the rest (documents,
    server tools, thinking, ...) left for Anthropic to judge."""

    model = StrictCharField(max_length=256)
    max_tokens = StrictIntegerField(min_value=1)
    messages = NativeMessageParamSerializer(many=True, allow_empty=False)
    stream = StrictBooleanField(required=False)
