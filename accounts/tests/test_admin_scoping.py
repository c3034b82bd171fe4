"""The admin is tenant-scoped: organization admins see and change only their own rows."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from accounts import services
from accounts.admin_scoping import OrganizationScopedAdmin
from accounts.models import (
    ApiKey,
    AuditLogEntry,
    Invitation,
    Membership,
    Organization,
    ProviderCredential,
    RoleLimit,
    User,
)
from accounts.permissions import ORGANIZATION_ADMINS_GROUP
from accounts.tests.admin_cast import (
    PLAINTEXT_KEY,
    key_of,
    login,
    rows_of,
    scoped_admins,
    url,
)

pytestmark = pytest.mark.django_db


# --- Every tenant model is scoped ----------------------------------------------------------


def test_every_admin_of_an_organization_owned_model_is_scoped():
    unscoped = []
    for model, model_admin in admin.site._registry.items():
        owned = any(
            field.is_relation
            and field.many_to_one
            and field.related_model in (Organization, ApiKey)
            for field in model._meta.get_fields()
        )
        if owned and not isinstance(model_admin, OrganizationScopedAdmin):
            unscoped.append(model._meta.label)
    assert unscoped == []


def test_the_accounts_models_are_all_in_the_admin():
    registered = set(admin.site._registry)
    for model in (Organization, Membership, RoleLimit, ApiKey, ProviderCredential, AuditLogEntry):
        assert model in registered


# --- Change lists ------------------------------------------------------------------------


def test_an_organization_admin_sees_only_their_organizations_rows_on_every_change_list(
    world, alice, org_a, org_b
):
    client = login(alice)
    for model_admin in scoped_admins():
        response = client.get(url(model_admin.model, "changelist"))

        opts = model_admin.model._meta
        if not alice.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            # The group does not grant this model (yet): closed, which is safe.
            assert response.status_code == 403, model_admin.model
            continue
        assert response.status_code == 200, model_admin.model
        listed = list(response.context["cl"].result_list)
        organizations = {model_admin.organization_id_of(row) for row in listed}
        assert organizations <= {org_a.pk}, model_admin.model
        # Filter choices, search hints and rows alike: nothing names the other tenant.
        assert "Org B" not in response.content.decode(), model_admin.model
        if model_admin.model._meta.app_label == "accounts":
            assert listed, f"{model_admin.model} shows alice nothing: the test proves nothing"


def test_platform_staff_see_every_organizations_rows(world, root, org_a, org_b):
    client = login(root)
    for model_admin in scoped_admins():
        if model_admin.model._meta.app_label != "accounts":
            continue
        response = client.get(url(model_admin.model, "changelist"))

        organizations = {
            model_admin.organization_id_of(row) for row in response.context["cl"].result_list
        }
        assert {org_a.pk, org_b.pk} <= organizations, model_admin.model


def test_platform_provider_keys_are_visible_to_staff_only(world, root, alice):
    platform = ProviderCredential.objects.get(organization=None)

    assert login(root).get(url(ProviderCredential, "change", platform.pk)).status_code == 200
    assert login(alice).get(url(ProviderCredential, "change", platform.pk)).status_code == 404


# --- Another organization's objects answer 404 ---------------------------------------------


def test_another_organizations_objects_answer_404_on_every_admin_url(world, charlie, org_a):
    client = login(charlie)
    checked = 0
    for model_admin in scoped_admins():
        model = model_admin.model
        for obj in rows_of(model_admin, org_a):
            for view in ("change", "delete", "history"):
                target = url(model, view, obj.pk)
                assert client.get(target).status_code == 404, target
                assert client.post(target, {"post": "yes"}).status_code == 404, target
            checked += 1
    assert checked >= 6


def test_a_missing_object_answers_404_like_a_foreign_one(world, alice):
    client = login(alice)

    assert client.get(url(ApiKey, "change", 999_999)).status_code == 404


def test_a_change_list_action_cannot_reach_another_organizations_key(world, alice):
    charlie_key = key_of(world["charlie_key"])

    client = login(alice)
    client.post(
        url(ApiKey, "changelist"),
        {"action": "revoke_selected", "_selected_action": [charlie_key.pk]},
    )

    charlie_key.refresh_from_db()
    assert charlie_key.revoked_at is None


# --- Crafted forms cannot move rows into another organization ------------------------------


def test_a_crafted_add_form_cannot_create_a_role_limit_in_another_organization(world, alice, org_b):
    before = list(RoleLimit.objects.filter(organization=org_b).values())

    response = login(alice).post(
        url(RoleLimit, "add"),
        {"organization": org_b.pk, "role": "premium", "rpm_limit": 1, "tpm_limit": 1},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert list(RoleLimit.objects.filter(organization=org_b).values()) == before


def test_a_crafted_add_form_cannot_create_a_key_in_another_organization(
    world, alice, org_a, org_b, charlie
):
    client = login(alice)
    count = ApiKey.objects.count()
    for organization in (org_b, org_a):  # org_a with org_b's member is refused too
        response = client.post(
            url(ApiKey, "add"),
            {
                "organization": organization.pk,
                "user": charlie.pk,
                "name": "intruder",
                "expires_at_0": "",
                "expires_at_1": "",
            },
        )

        assert response.status_code == 200
        assert response.context["adminform"].form.errors
        assert not PLAINTEXT_KEY.search(response.content.decode())
    assert ApiKey.objects.count() == count


def test_a_crafted_add_form_cannot_store_a_provider_key_elsewhere_or_platform_wide(
    world, alice, org_b
):
    client = login(alice)
    count = ProviderCredential.objects.count()
    for organization in (org_b.pk, ""):
        response = client.post(
            url(ProviderCredential, "add"),
            {
                "organization": organization,
                "provider": "anthropic",
                "name": "default",
                "key": "sk-ant-intruder-000000",
                "base_url": "",
                "options": "{}",
            },
        )

        assert response.status_code == 200
        assert response.context["adminform"].form.errors
    assert ProviderCredential.objects.count() == count


def test_a_crafted_add_form_cannot_add_a_member_to_another_organization(world, alice, org_b):
    response = login(alice).post(
        url(Invitation, "add"),
        {"organization": org_b.pk, "email": "mallory@example.com", "role": "admin"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not Invitation.objects.filter(email="mallory@example.com").exists()
    assert not User.objects.filter(username="mallory").exists()
    assert (
        not Membership.objects.filter(organization=org_b, role="admin")
        .exclude(user__username="charlie")
        .exists()
    )


def test_a_crafted_change_form_cannot_move_a_membership_to_another_organization(
    world, alice, bob, org_a, org_b
):
    membership = Membership.objects.get(user=bob, organization=org_a)

    login(alice).post(
        url(Membership, "change", membership.pk),
        {"organization": org_b.pk, "user": bob.pk, "role": "basic"},
    )

    membership.refresh_from_db()
    assert membership.organization == org_a


def test_a_crafted_change_form_cannot_move_a_provider_key_to_another_organization(
    world, alice, org_a, org_b
):
    credential = ProviderCredential.objects.get(organization=org_a)

    login(alice).post(
        url(ProviderCredential, "change", credential.pk),
        {
            "organization": org_b.pk,
            "provider": "openai",
            "name": "x",
            "base_url": "",
            "options": "{}",
        },
    )

    credential.refresh_from_db()
    assert credential.organization == org_a and credential.name == "default"


def test_the_form_refuses_another_organization_even_when_a_subclass_offers_it(world, alice, org_b):
    # A subclass that widened the choices must still not save outside the scope.
    class CarelessRoleLimitAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
        fields = ["organization", "role", "rpm_limit", "tpm_limit"]

        def scoped_choices(self, db_field, request):
            return None

    model_admin = CarelessRoleLimitAdmin(RoleLimit, admin.site)
    request = RequestFactory().post("/")
    request.user = alice
    form_class = model_admin.get_form(request)

    form = form_class(data={"organization": org_b.pk, "role": "premium"})

    assert not form.is_valid()
    assert "You can only manage the organizations you administer." in form.non_field_errors()
    with pytest.raises(PermissionDenied):
        model_admin.save_model(request, RoleLimit(organization=org_b, role="premium"), form, False)
    assert not RoleLimit.objects.filter(organization=org_b, role="premium").exists()


# --- Who may use the admin ---------------------------------------------------------------


def test_a_basic_member_cannot_reach_the_admin(world, bob):
    client = login(bob)

    for target in ("/admin/", url(ApiKey, "changelist"), url(Organization, "changelist")):
        response = client.get(target)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_a_member_wrongly_made_staff_still_sees_nothing(world, bob):
    bob.is_staff = True
    bob.save()
    bob.groups.add(Group.objects.get(name=ORGANIZATION_ADMINS_GROUP))
    client = login(bob)

    for model_admin in scoped_admins():
        assert client.get(url(model_admin.model, "changelist")).status_code == 403


def test_organization_admins_become_staff_through_their_membership(org_a, org_b, root):
    carol, _ = services.user_get_or_create(username="carol")
    group = Group.objects.get(name=ORGANIZATION_ADMINS_GROUP)

    services.membership_set(organization=org_a, user=carol, role="admin", actor=root)
    services.membership_set(organization=org_b, user=carol, role="admin", actor=root)
    carol.refresh_from_db()
    assert carol.is_staff and group in carol.groups.all()

    services.membership_set(organization=org_a, user=carol, role="basic", actor=root)
    carol.refresh_from_db()
    assert carol.is_staff, "still the admin of org_b"

    services.membership_remove(
        membership=Membership.objects.get(user=carol, organization=org_b), actor=root
    )
    carol.refresh_from_db()
    assert not carol.is_staff and group not in carol.groups.all()
    assert AuditLogEntry.objects.filter(event="user.staff_revoked", actor=root).exists()


def test_a_superuser_keeps_staff_access_without_admin_memberships(org_a, root):
    services.membership_set(organization=org_a, user=root, role="admin", actor=None)
    services.membership_set(organization=org_a, user=root, role="basic", actor=None)

    root.refresh_from_db()
    assert root.is_staff


def test_an_organization_admin_cannot_create_or_delete_organizations(world, alice, org_a):
    client = login(alice)

    assert client.get(url(Organization, "add")).status_code == 403
    assert client.post(url(Organization, "delete", org_a.pk), {"post": "yes"}).status_code == 403
    assert Organization.objects.filter(pk=org_a.pk).exists()


# --- The audit log is read-only ------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "root"])
def test_the_audit_log_is_read_only_for_everyone(world, request, who, org_a):
    client = login(request.getfixturevalue(who))
    entry = AuditLogEntry.objects.filter(organization=org_a).first()
    original = AuditLogEntry.objects.filter(pk=entry.pk).values().get()

    assert client.get(url(AuditLogEntry, "changelist")).status_code == 200
    assert client.get(url(AuditLogEntry, "change", entry.pk)).status_code == 200
    assert client.get(url(AuditLogEntry, "add")).status_code == 403
    assert client.post(url(AuditLogEntry, "change", entry.pk), {"event": "x"}).status_code == 403
    assert client.post(url(AuditLogEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    client.post(
        url(AuditLogEntry, "changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert AuditLogEntry.objects.filter(pk=entry.pk).values().get() == original
