from django.urls import path

from guardrails import api

urlpatterns = [
    path("guardrails/", api.GuardrailSettingsView.as_view(), name="api-guardrails"),
    path(
        "guardrails/keys/<int:key_id>/",
        api.KeyGuardrailSettingsView.as_view(),
        name="api-guardrails-key",
    ),
    path(
        "guardrails/rules/", api.GuardrailRuleListCreateView.as_view(), name="api-guardrail-rules"
    ),
    path(
        "guardrails/rules/<int:rule_id>/",
        api.GuardrailRuleDetailView.as_view(),
        name="api-guardrail-rule-detail",
    ),
]
