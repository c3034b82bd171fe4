"""The tools of the organizations a user administers (scoped by accounts.admin_scoping).
Writes go through ``tools.services``, so each leaves an audit entry; a secret is typed in,
stored encrypted and never rendered back."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin
from tools import services
from tools.models import Tool, ToolAttachRule
from tools.selectors import organization_tools_forget


def _adopt(obj, saved) -> None:
    # The admin keeps using its own instance after saving (log entry, redirect).
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


class ToolForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        strip=True,
        # render_value=False: a typed secret is never sent back, even on a form with errors.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Sent as 'Authorization: Bearer <secret>'. Stored encrypted and never shown "
        "again. Leave empty to keep the current one.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the stored secret.")

    class Meta:
        model = Tool
        fields = [
            "organization",
            "name",
            "description",
            "parameters",
            "url",
            "timeout_seconds",
            "enabled",
            "secret",
            "clear_secret",
        ]


class ToolAttachRuleInline(admin.TabularInline):
    model = ToolAttachRule
    fields = ["kind", "pattern", "enabled"]
    extra = 0


@admin.register(Tool)
class ToolAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    form = ToolForm
    list_display = ["name", "organization", "url", "enabled", "has_secret", "updated_at"]
    list_filter = ["enabled", "organization"]
    search_fields = ["name", "description", "url"]
    list_select_related = ["organization"]
    readonly_fields = ["secret_hint", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        # (organization, name) identifies the tool to clients; a new name is a new tool.
        return [*self.readonly_fields, *(["organization", "name"] if obj else [])]

    @admin.display(boolean=True, description="secret")
    def has_secret(self, obj):
        return bool(obj.encrypted_secret)

    @admin.display(description="secret")
    def secret_hint(self, obj):
        if not obj.encrypted_secret:
            return "-"
        return f"…{obj.secret_last_four}" if obj.secret_last_four else "set"

    def save_scoped_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = {name: data[name] for name in services.TOOL_FIELDS if name in data}
        secret = {}
        if data.get("clear_secret"):
            secret = {"secret": ""}
        elif data.get("secret"):
            secret = {"secret": data["secret"]}
        if change:
            saved = services.tool_update(
                tool=Tool.objects.get(pk=obj.pk), actor=request.user, **fields, **secret
            )
        else:
            saved = services.tool_create(
                organization=obj.organization,
                name=obj.name,
                actor=request.user,
                **fields,
                secret=secret.get("secret", ""),
            )
        _adopt(obj, saved)
        organization_tools_forget()

    def save_formset(self, request, form, formset, change):
        # The rules' forms were validated by the model's clean (pattern bounds, regex).
        instances = formset.save(commit=False)
        for rule in formset.deleted_objects:
            services.tool_attach_rule_delete(rule=rule, actor=request.user)
        for rule in instances:
            if rule.pk is None:
                services.tool_attach_rule_create(
                    tool=form.instance,
                    kind=rule.kind,
                    pattern=rule.pattern,
                    enabled=rule.enabled,
                    actor=request.user,
                )
            else:
                rule.save()
        organization_tools_forget()

    def delete_model(self, request, obj):
        services.tool_delete(tool=obj, actor=request.user)
        organization_tools_forget()

    def delete_queryset(self, request, queryset):
        for tool in queryset.select_related("organization"):
            services.tool_delete(tool=tool, actor=request.user)
        organization_tools_forget()

    inlines = [ToolAttachRuleInline]
