"""The management API's shapes for prompts, versions, labels, diffs and usage."""

from __future__ import annotations

from rest_framework import serializers

from prompts.models import LABEL_VALIDATOR
from prompts.templating import variables_of


class PromptVersionSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    version = serializers.IntegerField(source="number", read_only=True)
    messages = serializers.JSONField(help_text="Chat messages; text may hold {{variable}}.")
    model = serializers.CharField(max_length=256, required=False, allow_blank=True, default="")
    parameters = serializers.JSONField(required=False, default=dict)
    commit_message = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=50, validators=[LABEL_VALIDATOR]),
        required=False,
        default=list,
        write_only=True,
        help_text="Labels to point at this version once it is created.",
    )
    variables = serializers.SerializerMethodField()
    author = serializers.CharField(source="author.username", read_only=True, default=None)
    created_at = serializers.DateTimeField(read_only=True)

    def get_object(self, version) -> str:
        return "prompt.version"

    def get_variables(self, version) -> list[str]:
        return variables_of(version.messages)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["labels"] = sorted(label.name for label in instance.labels.all())
        return data


class PromptSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    object = serializers.SerializerMethodField()
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    latest_version = serializers.IntegerField(read_only=True, allow_null=True)
    labels = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)

    def get_object(self, prompt) -> str:
        return "prompt"

    def get_labels(self, prompt) -> dict[str, int]:
        return {label.name: label.version.number for label in prompt.labels.all()}


class PromptCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    version = PromptVersionSerializer(
        required=False, help_text="The first version, created with the prompt."
    )


class PromptUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(allow_blank=True)


class LabelSetSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class PromptDiffSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    prompt = serializers.CharField()
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    diff = serializers.CharField(help_text="A unified diff, lines joined by newlines.")

    def get_object(self, data) -> str:
        return "prompt.diff"


class PromptUsageRowSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost_micros = serializers.IntegerField()


class PromptUsageSerializer(serializers.Serializer):
    object = serializers.CharField()
    prompt = serializers.CharField()
    data = PromptUsageRowSerializer(many=True)
