"""The audit log, and the user pages platform staff alone may open."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.db.models import Q

from accounts.admin_scoping import OrganizationScopedAdmin, administered_organization_ids
from accounts.models import (
    AuditLogEntry,
    User,
)

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
