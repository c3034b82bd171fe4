"""The management API's shapes for tools. A secret is write-only: accepted, never returned."""

from __future__ import annotations

from rest_framework import serializers

from tools.models import MAX_PATTERN_LENGTH, MatchKind, Tool, ToolAttachRule


class ToolAttachRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ToolAttachRule
        fields = ["id", "kind", "pattern", "enabled", "created_at"]
        read_only_fields = fields


class ToolSerializer(serializers.ModelSerializer):
    has_secret = serializers.SerializerMethodField()
    rules = ToolAttachRuleSerializer(source="attach_rules", many=True, read_only=True)

    class Meta:
        model = Tool
        fields = [
            "id",
            "name",
            "description",
            "parameters",
            "url",
            "timeout_seconds",
            "enabled",
            "has_secret",
            "rules",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_secret(self, obj) -> bool:
        return bool(obj.encrypted_secret)


class ToolCreateSerializer(serializers.Serializer):
    # Field checks beyond types (URL policy, JSON Schema) are the model's, via the service.
    name = serializers.CharField(max_length=64)
    url = serializers.CharField(max_length=500)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    parameters = serializers.JSONField(required=False)
    secret = serializers.CharField(required=False, allow_blank=True, default="", write_only=True)
    timeout_seconds = serializers.FloatField(required=False, default=10.0)
    enabled = serializers.BooleanField(required=False, default=True)


class ToolUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    parameters = serializers.JSONField(required=False)
    secret = serializers.CharField(required=False, allow_blank=True, write_only=True)
    timeout_seconds = serializers.FloatField(required=False)
    enabled = serializers.BooleanField(required=False)


class ToolAttachRuleCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=MatchKind.choices, default=MatchKind.KEYWORD)
    pattern = serializers.CharField(max_length=MAX_PATTERN_LENGTH)
    enabled = serializers.BooleanField(required=False, default=True)


class ToolListSerializer(serializers.Serializer):
    object = serializers.CharField()
    data = ToolSerializer(many=True)
