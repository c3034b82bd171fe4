from rest_framework import serializers

from guardrails.models import PiiMode, RuleAction, RuleKind, RuleTarget


class GuardrailSettingsSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    pii_mode = serializers.ChoiceField(choices=PiiMode.choices, required=False)
    moderation_model = serializers.CharField(max_length=100, allow_blank=True, required=False)

    def get_object(self, row) -> str:
        return "guardrails"


class KeyGuardrailSettingsSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    api_key_id = serializers.IntegerField(read_only=True)
    pii_mode = serializers.ChoiceField(choices=PiiMode.choices)

    def get_object(self, row) -> str:
        return "key_guardrails"


class GuardrailRuleSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    object = serializers.SerializerMethodField()
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=RuleKind.choices, default=RuleKind.PHRASE)
    pattern = serializers.CharField(max_length=500, trim_whitespace=False)
    action = serializers.ChoiceField(choices=RuleAction.choices, default=RuleAction.DENY)
    target = serializers.ChoiceField(choices=RuleTarget.choices, default=RuleTarget.BOTH)
    enabled = serializers.BooleanField(default=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_object(self, rule) -> str:
        return "guardrail_rule"


class GuardrailRuleListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = GuardrailRuleSerializer(many=True)
