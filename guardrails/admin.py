"""Guardrail settings and rules in the admin, scoped to the organizations one administers
(decision 0005); every write goes through a service, so it is validated and audited."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin
from common.errors import DomainError
from guardrails import rules as rules_engine
from guardrails import services
from guardrails.models import ApiKeyGuardrails, GuardrailRule, OrganizationGuardrails


@admin.register(OrganizationGuardrails)
class OrganizationGuardrailsAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "organization"
    list_display = ("organization", "pii_mode", "moderation_model", "updated_at")
    fields = ("organization", "pii_mode", "moderation_model")

    def save_scoped_model(self, request, obj, form, change):
        saved = services.organization_guardrails_update(
            organization=obj.organization,
            pii_mode=obj.pii_mode,
            moderation_model=obj.moderation_model,
            actor=request.user,
        )
        obj.pk = saved.pk


@admin.register(ApiKeyGuardrails)
class ApiKeyGuardrailsAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "api_key__organization"
    list_display = ("api_key", "pii_mode", "updated_at")
    fields = ("api_key", "pii_mode")

    def save_scoped_model(self, request, obj, form, change):
        saved = services.api_key_guardrails_update(
            api_key=obj.api_key, pii_mode=obj.pii_mode, actor=request.user
        )
        obj.pk = saved.pk


class GuardrailRuleForm(forms.ModelForm):
    class Meta:
        model = GuardrailRule
        fields = ("organization", "name", "kind", "pattern", "action", "target", "enabled")

    def clean(self):
        cleaned = super().clean()
        kind, pattern = cleaned.get("kind"), cleaned.get("pattern")
        if kind and pattern:
            try:
                rules_engine.check_pattern(kind, pattern)
            except rules_engine.RuleInvalid as error:
                self.add_error("pattern", str(error))
        return cleaned


@admin.register(GuardrailRule)
class GuardrailRuleAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "organization"
    form = GuardrailRuleForm
    list_display = ("name", "organization", "kind", "action", "target", "enabled")
    list_filter = ("action", "target", "enabled")
    search_fields = ("name", "pattern")

    def save_scoped_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in GuardrailRuleForm.Meta.fields}
        try:
            if change:
                fields.pop("organization")
                services.guardrail_rule_update(rule=obj, actor=request.user, **fields)
            else:
                saved = services.guardrail_rule_create(actor=request.user, **fields)
                obj.pk = saved.pk
        except DomainError as error:  # a race past the form's checks (a duplicate name)
            raise forms.ValidationError(error.message) from error

    def delete_model(self, request, obj):
        services.guardrail_rule_delete(rule=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for rule in queryset.select_related("organization"):
            services.guardrail_rule_delete(rule=rule, actor=request.user)
