"""The accounts admin: organizations, members, limits, keys, provider keys and the audit log.

Every page is tenant-scoped by ``OrganizationScopedAdmin``, and every write goes through
``accounts.services`` so it is audited under the acting user, exactly like the same
change made through the API or a command.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts import invitations, services
from accounts.admin_scoping import OrganizationScopedAdmin, administered_organization_ids
from accounts.models import (
    ApiKey,
    AuditLogEntry,
    CacheScope,
    Invitation,
    Membership,
    Organization,
    ProviderCredential,
    RoleLimit,
    User,
)
from accounts.services import ORGANIZATION_SETTINGS
from common.errors import DomainError

# Roles whose prose may be compressed. Tool results are never prose: they have their own,
# lossless setting (compression_tool_results).
MESSAGE_ROLES = [
    ("system", "system"),
    ("user", "user"),
    ("assistant", "assistant"),
]

# What each level saves and risks, measured by `manage.py synthlang_eval` on the held-out sets
# in eval/ (o200k_base): the median token saving of an agent conversation and of a chatty
# request, the share of all prose tokens saved, and the must_keep strings lost out of 260.
# proxy's tests recompute these figures, so the note beside the setting cannot drift from what
# the engine does.
COMPRESSION_LEVEL_FIGURES = {
    "low": {"agent_median": 0.2392, "chatty_median": 0.0, "prose_saved": 0.0, "lost": 0},
    "medium": {"agent_median": 0.2392, "chatty_median": 0.0447, "prose_saved": 0.0052, "lost": 0},
    "high": {"agent_median": 0.2401, "chatty_median": 0.1229, "prose_saved": 0.0291, "lost": 18},
}
COMPRESSION_LEVEL_RISKS = {
    "low": "Lossless and safe on any text (the platform default): whitespace that carries "
    "nothing, JSON minified, verbatim repeats and repeated tool results referenced. No word "
    "changes.",
    "medium": "Also removes request framing, fillers and verbose phrases from instructions. "
    "Never touches material (quotes, drafts, tables, citations, code, data) and never removes "
    "a sentence.",
    "high": "Also drops articles, courtesy sentences and intensifiers (telegraphic style): the "
    "wording of rules, such as ordinals and precedence, can change. For prompts you control.",
}


def compression_level_note() -> str:
    """The help text beside the level: what each one does, saves and risks, as measured."""
    rows = format_html_join(
        "",
        "<li><b>{}</b>: {} Saves {} of an agent conversation and {} of a chatty request "
        "(medians), {} of all prose; {} of 260 must-keep strings lost on held-out prompts.</li>",
        (
            (
                level,
                COMPRESSION_LEVEL_RISKS[level],
                f"{figures['agent_median']:.1%}",
                f"{figures['chatty_median']:.1%}",
                f"{figures['prose_saved']:.1%}",
                figures["lost"],
            )
            for level, figures in COMPRESSION_LEVEL_FIGURES.items()
        ),
    )
    return format_html(
        "Empty follows the platform default (SYNTHLANG_DEFAULT_LEVEL, low unless changed)."
        "<ul>{}</ul>",
        rows,
    )


class NameListField(forms.CharField):
    """A list of names (models, patterns like ``gpt-4o*``) typed as comma-separated text."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "help_text", "Comma-separated; wildcards allowed (gpt-4o*). Empty: no restriction."
        )
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 80}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return list(value)
        text = super().to_python(value)
        return [name.strip() for name in text.replace("\n", ",").split(",") if name.strip()]

    def has_changed(self, initial, data):
        return (initial or []) != self.to_python(data)


def _adopt(obj, saved) -> None:
    """Make the admin's unsaved ``obj`` the row a service just created.

    The admin keeps using its own instance after ``save_model`` (log entry, redirect),
    so it must carry the saved row's primary key and values.
    """
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def _is_platform_staff(request) -> bool:
    return administered_organization_ids(request) is None


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
        platform_staff = _is_platform_staff(request)

        class ScopedForm(form_class):
            def __init__(self, *args, **form_kwargs):
                super().__init__(*args, **form_kwargs)
                self.platform_staff = platform_staff
                self.limit_cache_scope(platform_staff=platform_staff)

        return ScopedForm

    def has_add_permission(self, request):
        return _is_platform_staff(request) and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return _is_platform_staff(request) and super().has_delete_permission(request, obj)

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
        _adopt(obj, organization)

    def delete_model(self, request, obj):
        services.organization_delete(organization=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for organization in queryset:
            services.organization_delete(organization=organization, actor=request.user)


# --- Members -------------------------------------------------------------------------------


class MembershipAddForm(forms.ModelForm):
    """Platform staff only: organization admins invite by e-mail (``InvitationAdmin``),
    since a form that looks a username up tells them who exists elsewhere."""

    username = forms.CharField(max_length=150, help_text="An existing user, or a new user.")
    email = forms.EmailField(required=False, help_text="For a new user.")

    class Meta:
        model = Membership
        fields = ["organization", "username", "email", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Empty means DEFAULT_ROLE, decided by the service.
        self.fields["role"].required = False

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization")
        username = cleaned.get("username")
        if organization is None or not username:
            return cleaned
        existing = User.objects.filter(username=username).first()
        if existing is None:
            return cleaned
        if Membership.objects.filter(organization=organization, user=existing).exists():
            raise ValidationError(
                f"{username} is already a member of {organization}; change their role instead."
            )
        ids = administered_organization_ids(self.request)
        if ids is not None and not existing.memberships.filter(organization_id__in=ids).exists():
            # Another tenant's user: their details are not this admin's to see.
            raise ValidationError(
                "A user with that username already exists. Ask platform staff to add them."
            )
        return cleaned


class MembershipChangeForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role"]


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    list_select_related = ["user", "organization"]
    add_fieldsets = [(None, {"fields": ["organization", "username", "email", "role"]})]
    change_fieldsets = [(None, {"fields": ["user", "organization", "role", "created_at"]})]

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.change_fieldsets

    def has_add_permission(self, request):
        # Organization admins add members through invitations.
        return _is_platform_staff(request) and super().has_add_permission(request)

    def get_readonly_fields(self, request, obj=None):
        return ["user", "organization", "created_at"] if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = MembershipAddForm if obj is None else MembershipChangeForm
        form_class = super().get_form(request, obj, change, **kwargs)
        form_class.request = request
        return form_class

    def save_scoped_model(self, request, obj, form, change):
        if change:
            membership = services.membership_set(
                organization=obj.organization,
                user=obj.user,
                role=form.cleaned_data["role"],
                actor=request.user,
            )
        else:
            membership = services.member_add(
                organization=form.cleaned_data["organization"],
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"] or None,
                actor=request.user,
            )
        _adopt(obj, membership)

    def delete_model(self, request, obj):
        services.membership_remove(membership=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("organization", "user"):
            services.membership_remove(membership=membership, actor=request.user)


# --- Invitations -------------------------------------------------------------------------


class InvitationForm(forms.ModelForm):
    class Meta:
        model = Invitation
        fields = ["organization", "email", "role"]
        help_texts = {
            "email": "An invitation is sent to this address; the person joins when they "
            "accept it. Nothing is said about whether the address has an account.",
        }


@admin.register(Invitation)
class InvitationAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    form = InvitationForm
    list_display = ["email", "organization", "role", "state", "created_at", "expires_at"]
    list_filter = ["role", "organization"]
    search_fields = ["email"]
    list_select_related = ["organization"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["organization", "email", "role", "state", "created_at", "expires_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "email", "role"]
        return ["organization", "email", "role", "state", "created_at", "expires_at"]

    def has_change_permission(self, request, obj=None):
        # An invitation is sent as it is; send another for another role.
        return False if obj is not None else super().has_change_permission(request, obj)

    @admin.display(description="state")
    def state(self, obj):
        if obj.accepted_at:
            return "accepted"
        if obj.revoked_at:
            return "replaced or withdrawn"
        if obj.expires_at <= timezone.now():
            return "expired"
        return "pending"

    def save_scoped_model(self, request, obj, form, change):
        invitation = invitations.member_invite(
            organization=form.cleaned_data["organization"],
            email=form.cleaned_data["email"],
            role=form.cleaned_data["role"] or None,
            actor=request.user,
            accept_url=lambda token: request.build_absolute_uri(
                reverse("invitation-accept", args=[token])
            ),
        )
        _adopt(obj, invitation)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"Invitation sent to {obj.email}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:accounts_invitation_changelist"))


# --- Limits per role -----------------------------------------------------------------------


class RoleLimitForm(forms.ModelForm):
    allowed_models = NameListField()

    class Meta:
        model = RoleLimit
        fields = ["organization", "role", "rpm_limit", "tpm_limit", "allowed_models"]


@admin.register(RoleLimit)
class RoleLimitAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    form = RoleLimitForm
    list_display = ["organization", "role", "rpm_limit", "tpm_limit", "allowed_models"]
    list_filter = ["role", "organization"]
    list_select_related = ["organization"]

    def get_readonly_fields(self, request, obj=None):
        # A row is one (organization, role) override; another pair is another row.
        return ["organization", "role"] if obj is not None else []

    def save_scoped_model(self, request, obj, form, change):
        limit = services.role_limit_set(
            organization=obj.organization,
            role=obj.role,
            rpm_limit=form.cleaned_data["rpm_limit"],
            tpm_limit=form.cleaned_data["tpm_limit"],
            allowed_models=form.cleaned_data["allowed_models"],
            actor=request.user,
        )
        _adopt(obj, limit)

    def delete_model(self, request, obj):
        services.role_limit_delete(role_limit=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for limit in queryset.select_related("organization"):
            services.role_limit_delete(role_limit=limit, actor=request.user)


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
            _adopt(obj, api_key)
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
        _adopt(obj, api_key)
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
        if db_field.name == "organization" and _is_platform_staff(request):
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
        _adopt(obj, credential)

    def delete_model(self, request, obj):
        services.provider_credential_delete(credential=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for credential in queryset.select_related("organization"):
            services.provider_credential_delete(credential=credential, actor=request.user)


# --- Audit log -------------------------------------------------------------------------------


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    list_display = ["created_at", "event", "organization", "actor", "target_repr"]
    list_filter = ["event", "organization"]
    search_fields = ["event", "target_repr", "actor__username"]
    list_select_related = ["organization", "actor"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "event",
        "organization",
        "actor",
        "target_type",
        "target_id",
        "target_repr",
        "details",
    ]
    readonly_fields = fields

    # An audit log that can be edited proves nothing: nobody, staff included, may
    # add, change or delete entries here.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Users (platform staff only: the group grants organization admins no user rights) -------


class AccountsUserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User


class AccountsUserChangeForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User


@admin.register(User)
class AccountsUserAdmin(UserAdmin):
    form = AccountsUserChangeForm
    add_form = AccountsUserCreationForm

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        ids = administered_organization_ids(request)
        if ids is None:
            return queryset
        # Should an organization admin ever be granted user rights, they still see
        # only their own members.
        return queryset.filter(Q(memberships__organization_id__in=ids)).distinct()
