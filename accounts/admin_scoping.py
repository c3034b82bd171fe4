"""Tenant scoping for Django admin pages: a mixin every app's ModelAdmin can use.

Platform staff (superusers) see every row. An organization admin (a user whose
Membership role is ``admin``) sees and edits only the rows of the organizations they
administer; anyone else sees nothing at all. Rows are scoped in one place,
``get_queryset``, and everything else the admin shows or accepts is derived from it or
checked against it: object URLs, foreign-key and many-to-many choices, list filters,
form validation and saving.

An object outside the caller's organizations answers 404, exactly like an object that
does not exist, so an outsider cannot probe ids to learn what exists (see
docs/decisions/0005-admin-tenant-scoping.md).

Usage::

    @admin.register(Budget)
    class BudgetAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
        organization_field = "organization"  # or "api_key__organization", or "pk"

        def save_scoped_model(self, request, obj, form, change):
            budget_set(..., actor=request.user)  # writes go through services
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.filters import AllValuesFieldListFilter, RelatedOnlyFieldListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import Http404

from accounts.models import Membership, Organization, Role
from accounts.permissions import ORGANIZATION_ADMINS_GROUP, organization_admins_grant

__all__ = [
    "ORGANIZATION_ADMINS_GROUP",
    "OrganizationScopedAdmin",
    "ScopedAllValuesFieldListFilter",
    "administered_organization_ids",
    "organization_admins_grant",
]

OUTSIDE_ORGANIZATIONS_MESSAGE = "You can only manage the organizations you administer."


def administered_organization_ids(request) -> frozenset[int] | None:
    """Ids of the organizations the request's user administers; ``None`` means every one.

    Computed once per request: a change list asks for it many times.
    """
    cached = getattr(request, "_administered_organization_ids", False)
    if cached is not False:
        return cached
    user = request.user
    if user.is_active and user.is_superuser:
        ids = None
    elif not user.is_authenticated or not user.is_active:
        ids = frozenset()
    else:
        ids = frozenset(
            Membership.objects.filter(user=user, role=Role.ADMIN).values_list(
                "organization_id", flat=True
            )
        )
    request._administered_organization_ids = ids
    return ids


class ScopedAllValuesFieldListFilter(AllValuesFieldListFilter):
    """Django's "all values" filter, but the values come from the scoped queryset.

    Django takes the values of a field reached across a relation from the related
    model's whole table, which would list other organizations' values.
    """

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (
            model_admin.get_queryset(request)
            .distinct()
            .order_by(field_path)
            .values_list(field_path, flat=True)
        )


class OrganizationScopedAdmin:
    """Mix in before ``admin.ModelAdmin``.

    ``organization_field``: the lookup path from the model to its ``Organization``
    (``"organization"``, ``"api_key__organization"``, or ``"pk"`` when the model *is*
    ``Organization``). Rows whose organization is empty (platform-wide rows) are
    visible to superusers only.

    ``shared_foreignkeys``: names of foreign keys to platform-wide tables (prices,
    model catalogue) whose choices everyone may see. Any other foreign key to a model
    this mixin cannot scope offers no choices to organization admins (fail closed).
    """

    organization_field: str = "organization"
    shared_foreignkeys: tuple[str, ...] = ()

    # --- Which rows --------------------------------------------------------------------

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        ids = administered_organization_ids(request)
        if ids is None:
            return queryset
        return queryset.filter(**{f"{self.organization_field}__in": ids})

    def organization_id_of(self, obj) -> int | None:
        """The id of the organization ``obj`` belongs to, following ``organization_field``."""
        value = obj
        try:
            for part in self.organization_field.split("__"):
                value = getattr(value, part)
                if value is None:
                    return None
        except ObjectDoesNotExist:
            return None  # an unsaved row whose relation is not set yet
        return value.pk if isinstance(value, models.Model) else value

    def is_in_scope(self, request, obj) -> bool:
        ids = administered_organization_ids(request)
        return ids is None or self.organization_id_of(obj) in ids

    def check_in_scope(self, request, obj) -> None:
        """The last line of defence before a write: never save outside the scope."""
        if not self.is_in_scope(request, obj):
            raise PermissionDenied(OUTSIDE_ORGANIZATIONS_MESSAGE)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Django would redirect with "doesn't exist"; a plain 404 says the same for
            # a missing row and for another organization's row.
            raise Http404(f"No {self.opts.verbose_name} with this id.")
        return obj

    # --- Who may use the pages -----------------------------------------------------------

    def _may_use_admin(self, request) -> bool:
        ids = administered_organization_ids(request)
        return ids is None or bool(ids)

    def has_module_permission(self, request):
        return self._may_use_admin(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        if not self._may_use_admin(request):
            return False
        if obj is not None and not self.is_in_scope(request, obj):
            return False
        return super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        # *args: inlines receive the parent object as well.
        return self._may_use_admin(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        if not self._may_use_admin(request):
            return False
        if obj is not None and not self.is_in_scope(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if not self._may_use_admin(request):
            return False
        if obj is not None and not self.is_in_scope(request, obj):
            return False
        return super().has_delete_permission(request, obj)

    # --- What forms offer and accept --------------------------------------------------

    def scoped_choices(self, db_field, request):
        """The rows an organization admin may pick for a relation; ``None``: no limit."""
        ids = administered_organization_ids(request)
        if ids is None or db_field.name in self.shared_foreignkeys:
            return None
        related_model = db_field.remote_field.model
        if related_model is Organization:
            return Organization.objects.filter(pk__in=ids)
        if related_model._meta.label == settings.AUTH_USER_MODEL:
            return related_model._default_manager.filter(
                memberships__organization_id__in=ids
            ).distinct()
        related_admin = self.admin_site._registry.get(related_model)
        if isinstance(related_admin, OrganizationScopedAdmin):
            return related_admin.get_queryset(request)
        try:
            related_model._meta.get_field("organization")
        except FieldDoesNotExist:
            return related_model._default_manager.none()
        return related_model._default_manager.filter(organization_id__in=ids)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        choices = self.scoped_choices(db_field, request)
        if choices is not None:
            kwargs["queryset"] = choices
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if (
            formfield is not None
            and db_field.name == self.organization_field.split("__")[0]
            and administered_organization_ids(request) is not None
        ):
            # An empty organization means "platform-wide", which only staff may create.
            formfield.required = True
        return formfield

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        choices = self.scoped_choices(db_field, request)
        if choices is not None:
            kwargs["queryset"] = choices
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        ids = administered_organization_ids(request)
        if ids is None:
            return form_class
        model_admin = self

        class OrganizationScopedForm(form_class):
            def _post_clean(self):
                # The instance now carries the submitted values, whatever path leads
                # from it to its organization (a crafted POST included).
                super()._post_clean()
                if model_admin.organization_id_of(self.instance) not in ids:
                    self.add_error(
                        None,
                        DjangoValidationError(
                            OUTSIDE_ORGANIZATIONS_MESSAGE, code="organization_not_administered"
                        ),
                    )

        OrganizationScopedForm.__name__ = form_class.__name__
        return OrganizationScopedForm

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        if administered_organization_ids(request) is None:
            return filters
        return [self._scoped_list_filter(entry) for entry in filters]

    def _scoped_list_filter(self, entry):
        if not isinstance(entry, str):
            return entry  # an explicit filter class decides for itself
        field = get_fields_from_path(self.model, entry)[-1]
        if field.is_relation:
            # Django's default offers every row of the related table as a choice.
            return (entry, RelatedOnlyFieldListFilter)
        if "__" in entry and not field.choices:
            return (entry, ScopedAllValuesFieldListFilter)
        return entry

    # --- Writes --------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        self.check_in_scope(request, obj)
        self.save_scoped_model(request, obj, form, change)

    def save_scoped_model(self, request, obj, form, change):
        """Save a row already checked to be in scope; override to call a service."""
        super().save_model(request, obj, form, change)


class ReadOnlyAdminMixin:
    """Append-only, derived or mirrored data: visible, never added, changed or deleted by hand."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
