"""Members, invitations and limits per role."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from accounts import invitations, services
from accounts.admin.forms_common import (
    NameListField,
    adopt_saved,
    is_platform_staff,
)
from accounts.admin_scoping import OrganizationScopedAdmin, administered_organization_ids
from accounts.models import (
    Invitation,
    Membership,
    RoleLimit,
    User,
)

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
        return is_platform_staff(request) and super().has_add_permission(request)

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
        adopt_saved(obj, membership)

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
        adopt_saved(obj, invitation)

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
        adopt_saved(obj, limit)

    def delete_model(self, request, obj):
        services.role_limit_delete(role_limit=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for limit in queryset.select_related("organization"):
            services.role_limit_delete(role_limit=limit, actor=request.user)
