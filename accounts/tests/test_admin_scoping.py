"""The admin is tenant-scoped: organization admins see and change only their own rows."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import invitations, services
from accounts.admin_scoping import OrganizationScopedAdmin
from accounts.crypto import decrypt_secret
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

pytestmark = pytest.mark.django_db

PLAINTEXT_KEY = re.compile(r"sk-syn-[A-Za-z0-9]{48}")
ORG_A_PROVIDER_KEY = "sk-org-a-provider-secret-AAAA1111"
ORG_B_PROVIDER_KEY = "sk-org-b-provider-secret-BBBB2222"
PLATFORM_PROVIDER_KEY = "sk-platform-provider-secret-PPPP3333"


@pytest.fixture
def world(org_a, org_b, alice, bob, charlie, alice_key, bob_key, charlie_key):
    """Rows of every accounts model in both organizations, plus platform-wide ones."""
    for organization, provider_key in ((org_a, ORG_A_PROVIDER_KEY), (org_b, ORG_B_PROVIDER_KEY)):
        services.provider_credential_set(
            organization=organization, provider="openai", key=provider_key, actor=None
        )
        services.role_limit_set(
            organization=organization, role="basic", rpm_limit=5, tpm_limit=500, actor=None
        )
        invitations.member_invite(
            organization=organization,
            email=f"guest@{organization.slug}.example.com",
            actor=None,
            accept_url=lambda token: f"http://testserver/invitations/{token}/",
        )
    services.provider_credential_set(
        organization=None, provider="openai", key=PLATFORM_PROVIDER_KEY, actor=None
    )
    return {"alice_key": alice_key, "bob_key": bob_key, "charlie_key": charlie_key}


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", "root@example.com", "root-password-1")


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def scoped_admins():
    return [
        model_admin
        for model_admin in admin.site._registry.values()
        if isinstance(model_admin, OrganizationScopedAdmin)
    ]


def rows_of(model_admin, organization):
    return model_admin.model._default_manager.filter(
        **{f"{model_admin.organization_field}__in": [organization.pk]}
    )


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def key_of(plaintext: str) -> ApiKey:
    return ApiKey.objects.get(prefix=plaintext[len("sk-syn-") :][:8])


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


# --- Key flows ---------------------------------------------------------------------------


def test_creating_a_key_shows_it_once_and_it_then_works_on_the_api(world, alice, bob, org_a):
    client = login(alice)

    response = client.post(
        url(ApiKey, "add"),
        {
            "organization": org_a.pk,
            "user": bob.pk,
            "name": "ci",
            "expires_at_0": "",
            "expires_at_1": "",
            "allowed_models": "gpt-4o*, fake-*",
            "rpm_limit": "",
            "tpm_limit": "",
        },
    )

    assert response.status_code == 200
    page = response.content.decode()
    shown = PLAINTEXT_KEY.findall(page)
    assert len(set(shown)) == 1
    plaintext = shown[0]
    assert 'data-copy-target="api-key-1"' in page and "accounts/copy-key.js" in page
    assert "no-store" in response["Cache-Control"]
    api_key = key_of(plaintext)
    assert api_key.user == bob and api_key.allowed_models == ["gpt-4o*", "fake-*"]
    assert AuditLogEntry.objects.get(event="api_key.created", target_id=str(api_key.pk)).actor == (
        alice
    )
    # Never again: not on the key's page, not in the list.
    for target in (url(ApiKey, "change", api_key.pk), url(ApiKey, "changelist")):
        later = client.get(target).content.decode()
        assert plaintext not in later and api_key.key_hash not in later
        assert api_key.masked in later
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.get("/api/keys/").status_code == 200


def test_the_copy_script_uses_the_clipboard_api():
    from django.contrib.staticfiles import finders

    with open(finders.find("accounts/copy-key.js")) as script:
        assert "navigator.clipboard.writeText" in script.read()


def test_the_rotate_action_revokes_the_key_and_shows_the_new_one_once(world, alice):
    old = key_of(world["bob_key"])

    response = login(alice).post(
        url(ApiKey, "changelist"), {"action": "rotate_selected", "_selected_action": [old.pk]}
    )

    assert response.status_code == 200
    shown = set(PLAINTEXT_KEY.findall(response.content.decode()))
    assert len(shown) == 1
    new_plaintext = shown.pop()
    old.refresh_from_db()
    assert old.revoked_at is not None
    assert key_of(new_plaintext).user == old.user
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {new_plaintext}")
    assert api.get("/api/keys/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {world['bob_key']}")
    assert api.get("/api/keys/").status_code == 401
    assert AuditLogEntry.objects.filter(event="api_key.rotated", actor=alice).exists()


def test_the_revoke_action_revokes_and_is_audited_under_the_acting_admin(world, alice):
    api_key = key_of(world["bob_key"])

    response = login(alice).post(
        url(ApiKey, "changelist"), {"action": "revoke_selected", "_selected_action": [api_key.pk]}
    )

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert AuditLogEntry.objects.get(event="api_key.revoked", target_id=str(api_key.pk)).actor == (
        alice
    )


def test_changing_a_keys_limits_in_the_admin_is_audited(world, alice):
    api_key = key_of(world["bob_key"])

    login(alice).post(
        url(ApiKey, "change", api_key.pk),
        {"allowed_models": "gpt-4o-mini", "rpm_limit": "7", "tpm_limit": ""},
    )

    api_key.refresh_from_db()
    assert (api_key.rpm_limit, api_key.allowed_models) == (7, ["gpt-4o-mini"])
    entry = AuditLogEntry.objects.get(event="api_key.limits_changed", target_id=str(api_key.pk))
    assert entry.actor == alice and entry.details["after"]["rpm"] == 7


def test_api_keys_cannot_be_deleted_in_the_admin(world, root):
    api_key = key_of(world["bob_key"])

    assert login(root).post(url(ApiKey, "delete", api_key.pk), {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=api_key.pk).exists()


# --- Provider keys -------------------------------------------------------------------------


def test_a_provider_key_entered_in_the_admin_is_stored_encrypted_and_never_shown(
    world, alice, org_a
):
    secret = "sk-ant-api03-admin-entered-secret-WXYZ"
    client = login(alice)

    response = client.post(
        url(ProviderCredential, "add"),
        {
            "organization": org_a.pk,
            "provider": "anthropic",
            "name": "default",
            "key": secret,
            "base_url": "",
            "options": "{}",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    credential = ProviderCredential.objects.get(organization=org_a, provider="anthropic")
    assert decrypt_secret(credential.encrypted_key) == secret
    assert (
        AuditLogEntry.objects.get(event="provider_key.created", target_id=str(credential.pk)).actor
        == alice
    )
    for target in (
        url(ProviderCredential, "changelist"),
        url(ProviderCredential, "change", credential.pk),
    ):
        page = client.get(target).content.decode()
        assert "…WXYZ" in page
        assert secret not in page and credential.encrypted_key not in page


def test_a_provider_key_form_redisplayed_with_errors_does_not_echo_the_key(world, alice, org_a):
    secret = "sk-never-echoed-secret-123456"

    response = login(alice).post(
        url(ProviderCredential, "add"),
        {"organization": org_a.pk, "provider": "", "name": "x", "key": secret, "options": "{}"},
    )

    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert secret not in response.content.decode()


def test_a_provider_key_is_kept_when_the_key_field_is_left_empty(world, alice, org_a):
    credential = ProviderCredential.objects.get(organization=org_a, provider="openai")

    login(alice).post(
        url(ProviderCredential, "change", credential.pk),
        {"key": "", "base_url": "https://llm.example.com/v1", "options": "{}"},
    )

    credential.refresh_from_db()
    assert credential.base_url == "https://llm.example.com/v1"
    assert decrypt_secret(credential.encrypted_key) == ORG_A_PROVIDER_KEY
    assert AuditLogEntry.objects.filter(event="provider_key.settings_changed", actor=alice).exists()


def test_a_provider_key_is_replaced_through_the_change_form(world, alice, org_a):
    credential = ProviderCredential.objects.get(organization=org_a, provider="openai")

    login(alice).post(
        url(ProviderCredential, "change", credential.pk),
        {"key": "sk-replacement-key-9876", "base_url": "", "options": "{}"},
    )

    credential.refresh_from_db()
    assert decrypt_secret(credential.encrypted_key) == "sk-replacement-key-9876"
    assert credential.last_four == "9876"
    assert AuditLogEntry.objects.filter(event="provider_key.replaced", actor=alice).exists()


# --- Roles, limits and organization settings -----------------------------------------------


def test_a_role_change_in_the_admin_is_audited_and_grants_admin_access(world, alice, bob, org_a):
    membership = Membership.objects.get(user=bob, organization=org_a)

    login(alice).post(url(Membership, "change", membership.pk), {"role": "admin"})

    membership.refresh_from_db()
    assert membership.role == "admin"
    entry = AuditLogEntry.objects.get(event="member.role_changed", target_id=str(membership.pk))
    assert entry.actor == alice and entry.details == {"before": "basic", "after": "admin"}
    assert login(bob).get(url(ApiKey, "changelist")).status_code == 200


def test_platform_staff_still_add_a_member_by_username(world, root, org_a, charlie):
    # Organization admins invite by e-mail (accounts/tests/test_invitations.py).
    client = login(root)

    response = client.post(
        url(Membership, "add"),
        {"organization": org_a.pk, "username": "charlie", "email": "", "role": "basic"},
    )
    assert response.status_code == 302
    assert Membership.objects.get(user=charlie, organization=org_a).role == "basic"


def test_removing_a_member_in_the_admin_revokes_their_keys(world, alice, bob, org_a):
    membership = Membership.objects.get(user=bob, organization=org_a)

    login(alice).post(url(Membership, "delete", membership.pk), {"post": "yes"})

    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert key_of(world["bob_key"]).revoked_at is not None
    assert AuditLogEntry.objects.filter(event="member.removed", actor=alice).exists()


def test_a_role_limit_change_in_the_admin_is_audited(world, alice, org_a):
    limit = RoleLimit.objects.get(organization=org_a, role="basic")

    login(alice).post(
        url(RoleLimit, "change", limit.pk),
        {"rpm_limit": "30", "tpm_limit": "3000", "allowed_models": ""},
    )

    limit.refresh_from_db()
    assert (limit.rpm_limit, limit.tpm_limit) == (30, 3000)
    assert AuditLogEntry.objects.filter(event="limits.role_changed", actor=alice).exists()


def test_organization_settings_changed_in_the_admin_are_audited(world, alice, org_a):
    response = login(alice).post(
        url(Organization, "change", org_a.pk),
        {
            "name": "Org A",
            "rpm_limit": "100",
            "tpm_limit": "",
            "allowed_models": "gpt-4o, claude-*",
            "compression_level": "high",
            "compression_roles": ["user"],
            "cache_enabled": "on",
            "cache_scope": "key",
            "prompt_cache_key_scope": "key",
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    org_a.refresh_from_db()
    assert org_a.rpm_limit == 100 and org_a.allowed_models == ["gpt-4o", "claude-*"]
    assert org_a.compression_roles == ["user"] and org_a.cache_scope == "key"
    entry = AuditLogEntry.objects.get(event="organization.settings_changed", actor=alice)
    assert entry.details["after"]["compression_level"] == "high"
    assert entry.details["before"]["rpm_limit"] is None
    # An unticked box is a change too: the prompt-cache breakpoints were on by default.
    assert (org_a.prompt_cache_breakpoints, org_a.prompt_cache_key_scope) == (False, "key")
    assert entry.details["before"]["prompt_cache_key_scope"] == "organization"


@pytest.mark.parametrize("who", ["alice", "root"])
def test_every_accounts_admin_page_renders(world, request, who, org_a):
    user = request.getfixturevalue(who)
    client = login(user)
    assert client.get("/admin/").status_code == 200
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "accounts":
            continue
        if not user.has_perm(f"accounts.view_{model._meta.model_name}"):
            continue
        assert client.get(url(model, "changelist")).status_code == 200, model
        assert client.get(url(model, "changelist"), {"q": "a"}).status_code == 200, model
        expected_add = 200 if model_admin.has_add_permission(_request_as(user)) else 403
        assert client.get(url(model, "add")).status_code == expected_add, model
        row = model_admin.get_queryset(_request_as(user)).first()
        if row is not None:
            assert client.get(url(model, "change", row.pk)).status_code == 200, model


def _request_as(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def test_platform_staff_create_an_organization_and_a_platform_provider_key(root):
    client = login(root)

    response = client.post(
        url(Organization, "add"),
        {
            "name": "Org C",
            "slug": "org-c",
            "rpm_limit": "50",
            "tpm_limit": "",
            "allowed_models": "",
            "compression_level": "",
            "compression_roles": ["system", "user"],
            "cache_enabled": "on",
            "cache_scope": "organization",
            "prompt_cache_breakpoints": "on",
            "prompt_cache_key_scope": "organization",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    org_c = Organization.objects.get(slug="org-c")
    assert org_c.rpm_limit == 50
    assert (org_c.prompt_cache_breakpoints, org_c.prompt_cache_key_scope) == (True, "organization")
    assert AuditLogEntry.objects.filter(event="organization.created", actor=root).exists()

    response = client.post(
        url(ProviderCredential, "add"),
        {
            "organization": "",
            "provider": "openai",
            "name": "default",
            "key": "sk-plat-123456",
            "options": "{}",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert ProviderCredential.objects.get(organization=None).last_four == "3456"


@pytest.mark.django_db(transaction=True)
def test_organization_admins_group_is_restored_after_a_flush():
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from accounts.permissions import ORGANIZATION_ADMINS_GROUP

    call_command("flush", interactive=False, verbosity=0)
    group = Group.objects.get(name=ORGANIZATION_ADMINS_GROUP)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"change_apikey", "change_budget", "change_modelroute"} <= codenames
