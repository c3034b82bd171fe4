"""API keys and provider keys."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts import services
from accounts.admin.forms_common import (
    NameListField,
    adopt_saved,
    is_platform_staff,
)
from accounts.admin_scoping import OrganizationScopedAdmin
from accounts.models import (
    ApiKey,
    ProviderCredential,
)
from common.errors import DomainError

# --- API keys ----------------------------------------------------------------------------


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.active(now)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


class ApiKeyAddForm(forms.ModelForm):
    allowed_models = NameListField()

    class Meta:
        model = ApiKey
        fields = [
            "organization",
            "user",
            "name",
            "expires_at",
            "allowed_models",
            "rpm_limit",
            "tpm_limit",
        ]

    def clean(self):
        cleaned = super().clean()
        organization, user = cleaned.get("organization"), cleaned.get("user")
        if organization and user and not user.memberships.filter(organization=organization):
            self.add_error("user", f"{user} is not a member of {organization}.")
        expires_at = cleaned.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            self.add_error("expires_at", "The expiry must be in the future.")
        return cleaned


class ApiKeyChangeForm(forms.ModelForm):
    allowed_models = NameListField()

    class Meta:
        model = ApiKey
        fields = ["allowed_models", "rpm_limit", "tpm_limit"]


@admin.register(ApiKey)
class ApiKeyAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    list_display = [
        "masked",
        "name",
        "organization",
        "user",
        "status",
        "created_at",
        "expires_at",
        "last_used_at",
    ]
    list_filter = [ApiKeyStatusFilter, "organization", "user"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["organization", "user"]
    actions = ["revoke_selected", "rotate_selected"]
    add_fieldsets = [
        (None, {"fields": ["organization", "user", "name", "expires_at"]}),
        ("Restrictions", {"fields": ["allowed_models", "rpm_limit", "tpm_limit"]}),
    ]
    change_fieldsets = [
        (
            None,
            {
                "fields": [
                    "masked",
                    "name",
                    "organization",
                    "user",
                    "status",
                    "created_at",
                    "expires_at",
                    "last_used_at",
                    "revoked_at",
                ]
            },
        ),
        ("Restrictions", {"fields": ["allowed_models", "rpm_limit", "tpm_limit"]}),
    ]
    key_created_template = "admin/accounts/apikey/key_created.html"

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.change_fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "masked",
            "name",
            "organization",
            "user",
            "status",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiKeyAddForm if obj is None else ApiKeyChangeForm
        return super().get_form(request, obj, change, **kwargs)

    def has_delete_permission(self, request, obj=None):
        # Keys are revoked, never deleted: usage and audit history keep pointing at them.
        return False

    @admin.display(description="key")
    def masked(self, obj):
        return obj.masked

    @admin.display(description="status")
    def status(self, obj):
        if obj.revoked_at is not None:
            return "revoked"
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return "expired"
        return "active"

    def save_scoped_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            api_key = services.api_key_update_limits(
                api_key=obj,
                rpm_limit=data["rpm_limit"],
                tpm_limit=data["tpm_limit"],
                allowed_models=data["allowed_models"],
                actor=request.user,
            )
            adopt_saved(obj, api_key)
            return
        api_key, plaintext = services.api_key_create(
            organization=data["organization"],
            user=data["user"],
            name=data["name"],
            expires_at=data["expires_at"],
            allowed_models=data["allowed_models"],
            rpm_limit=data["rpm_limit"],
            tpm_limit=data["tpm_limit"],
            actor=request.user,
        )
        adopt_saved(obj, api_key)
        # Held only in memory until response_add renders it; never stored anywhere.
        obj.plaintext_once = plaintext

    def response_add(self, request, obj, post_url_continue=None):
        plaintext = getattr(obj, "plaintext_once", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        # Rendered in the POST's own response rather than after a redirect, so the key
        # never passes through the session or message storage.
        return self._render_new_keys(
            request, title="API key created", created=[(obj, plaintext, None)]
        )

    def _render_new_keys(self, request, *, title, created):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "created": [
                {"api_key": api_key, "plaintext": plaintext, "replaces": replaces}
                for api_key, plaintext, replaces in created
            ],
        }
        response = TemplateResponse(request, self.key_created_template, context)
        # The page holds a secret: no browser or proxy may keep a copy.
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True).select_related("organization"):
            services.api_key_revoke(api_key=api_key, actor=request.user)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)

    @admin.action(
        description="Rotate selected API keys (new keys are shown once)", permissions=["change"]
    )
    def rotate_selected(self, request, queryset):
        created = []
        for api_key in queryset.filter(revoked_at__isnull=True).select_related(
            "organization", "user"
        ):
            try:
                new_key, plaintext = services.api_key_rotate(api_key=api_key, actor=request.user)
            except DomainError as error:
                self.message_user(request, f"{api_key.masked}: {error.message}", messages.ERROR)
                continue
            created.append((new_key, plaintext, api_key))
        if not created:
            self.message_user(request, "No active key was selected.", messages.WARNING)
            return None
        return self._render_new_keys(request, title="API keys rotated", created=created)


# --- Provider keys --------------------------------------------------------------------------


class ProviderCredentialForm(forms.ModelForm):
    base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Empty: the provider's default (OPENAI_BASE_URL for OpenAI-compatible). "
        "https only, to a public host unless platform staff allow-listed it.",
    )
    key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        # render_value=False: a submitted key is never sent back to the browser, even
        # when the form is redisplayed with errors.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )

    class Meta:
        model = ProviderCredential
        fields = ["organization", "provider", "name", "base_url", "options", "key"]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is None and not cleaned.get("key"):
            self.add_error("key", "Enter the provider's API key.")
        if "base_url" in cleaned and "options" in cleaned:
            try:
                services.provider_settings_check(
                    base_url=cleaned["base_url"], options=cleaned["options"]
                )
            except DomainError as error:
                field = error.param if error.param in self.fields else None
                message = error.message.removeprefix("base_url: ")
                self.add_error(field, message)
        return cleaned


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    form = ProviderCredentialForm
    list_display = ["provider", "name", "owner", "key_hint", "base_url", "updated_at"]
    list_filter = ["provider", "organization"]
    search_fields = ["name", "base_url", "organization__name"]
    list_select_related = ["organization"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            fields = ["organization", "provider", "name", "key", "base_url", "options"]
        else:
            fields = [
                "organization",
                "provider",
                "name",
                "key_hint",
                "key",
                "base_url",
                "options",
                "created_at",
                "updated_at",
            ]
        return [(None, {"fields": fields})]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # (organization, provider, name) identifies the credential; a new one is a new row.
        return ["organization", "provider", "name", "key_hint", "created_at", "updated_at"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "organization" and is_platform_staff(request):
            formfield.empty_label = "Platform-wide (every organization without its own key)"
        return formfield

    @admin.display(description="key")
    def key_hint(self, obj):
        return f"…{obj.last_four}" if obj.last_four else "-"

    @admin.display(description="organization", ordering="organization__name")
    def owner(self, obj):
        return obj.organization or "Platform"

    def save_scoped_model(self, request, obj, form, change):
        data = form.cleaned_data
        if data.get("key"):
            credential = services.provider_credential_set(
                organization=obj.organization,
                provider=obj.provider,
                name=obj.name,
                key=data["key"],
                base_url=data["base_url"],
                options=data["options"],
                actor=request.user,
            )
        else:
            credential = services.provider_credential_update(
                credential=ProviderCredential.objects.get(pk=obj.pk),
                base_url=data["base_url"],
                options=data["options"],
                actor=request.user,
            )
        adopt_saved(obj, credential)

    def delete_model(self, request, obj):
        services.provider_credential_delete(credential=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for credential in queryset.select_related("organization"):
            services.provider_credential_delete(credential=credential, actor=request.user)
