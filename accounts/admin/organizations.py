"""The organizations page: settings, shown with what each one measurably saves and risks."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from accounts import services
from accounts.admin.forms_common import (
    MESSAGE_ROLES,
    NameListField,
    adopt_saved,
    compression_level_note,
    is_platform_staff,
)
from accounts.admin_scoping import OrganizationScopedAdmin
from accounts.models import (
    CacheScope,
    Organization,
)
from accounts.services import ORGANIZATION_SETTINGS

# --- Organizations ---------------------------------------------------------------------


class OrganizationForm(forms.ModelForm):
    allowed_models = NameListField()
    compression_roles = forms.MultipleChoiceField(
        choices=MESSAGE_ROLES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The prose of messages with these roles is compressed at the level above. "
        "Tool results follow the setting below.",
    )

    class Meta:
        model = Organization
        fields = ["name", "slug", *sorted(ORGANIZATION_SETTINGS - {"name"})]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["compression_level"].help_text = compression_level_note()

    def limit_cache_scope(self, *, platform_staff: bool) -> None:
        """Only platform staff may share an organization's cache with other tenants; an
        organization admin sees the platform scope only while it is already set (and may
        leave it)."""
        field = self.fields.get("cache_scope")
        current = self.instance.cache_scope if self.instance.pk else None
        if field is None or platform_staff or current == CacheScope.PLATFORM:
            return
        field.choices = [c for c in field.choices if c[0] != CacheScope.PLATFORM]

    def clean_cache_scope(self):
        value = self.cleaned_data.get("cache_scope")
        current = self.instance.cache_scope if self.instance.pk else None
        if (
            value == CacheScope.PLATFORM
            and current != CacheScope.PLATFORM
            and not getattr(self, "platform_staff", False)
        ):
            raise ValidationError("Only platform staff can share an organization's cache.")
        return value


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "pk"
    form = OrganizationForm
    list_display = [
        "name",
        "slug",
        "rpm_limit",
        "tpm_limit",
        "compression_level",
        "cache_enabled",
        "cache_scope",
        "created_at",
    ]
    search_fields = ["name", "slug"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "created_at"]}),
        (
            "Limits for the whole organization",
            {"fields": ["rpm_limit", "tpm_limit", "allowed_models"]},
        ),
        (
            "Compression",
            {"fields": ["compression_level", "compression_roles", "compression_tool_results"]},
        ),
        (
            "Semantic cache",
            {
                "fields": ["cache_enabled", "cache_scope"],
                "description": "Platform-wide sharing is set by platform staff only, and then "
                "only among organizations whose route for a model is the same platform "
                "upstream; answers from an organization's own provider key are never shared.",
            },
        ),
        (
            "Provider prompt caching",
            {"fields": ["prompt_cache_breakpoints", "prompt_cache_key_scope"]},
        ),
        ("Tracing", {"fields": ["trace_content"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The slug names the organization in API calls and URLs; it is chosen once.
        return ["created_at", "slug"] if obj is not None else ["created_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        platform_staff = is_platform_staff(request)

        class ScopedForm(form_class):
            def __init__(self, *args, **form_kwargs):
                super().__init__(*args, **form_kwargs)
                self.platform_staff = platform_staff
                self.limit_cache_scope(platform_staff=platform_staff)

        return ScopedForm

    def has_add_permission(self, request):
        return is_platform_staff(request) and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return is_platform_staff(request) and super().has_delete_permission(request, obj)

    def save_scoped_model(self, request, obj, form, change):
        if change:
            # The form already wrote the new values onto obj; the audit needs the old ones.
            organization = Organization.objects.get(pk=obj.pk)
            editable = ORGANIZATION_SETTINGS
        else:
            organization = services.organization_create(
                name=form.cleaned_data["name"], slug=form.cleaned_data["slug"], actor=request.user
            )
            editable = ORGANIZATION_SETTINGS - {"name"}
        changes = {
            field: form.cleaned_data[field] for field in form.changed_data if field in editable
        }
        if changes:
            organization = services.organization_update_settings(
                organization=organization, actor=request.user, **changes
            )
        adopt_saved(obj, organization)

    def delete_model(self, request, obj):
        services.organization_delete(organization=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for organization in queryset:
            services.organization_delete(organization=organization, actor=request.user)
