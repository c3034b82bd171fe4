"""The admin's flows: keys shown once, provider keys stored encrypted, roles, limits and
settings audited under the acting admin."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts.crypto import decrypt_secret
from accounts.models import (
    ApiKey,
    AuditLogEntry,
    Membership,
    Organization,
    ProviderCredential,
    RoleLimit,
)
from accounts.permissions import ORGANIZATION_ADMINS_GROUP
from accounts.tests.admin_cast import (
    ORG_A_PROVIDER_KEY,
    PLAINTEXT_KEY,
    key_of,
    login,
    url,
)

pytestmark = pytest.mark.django_db


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
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    group = Group.objects.get(name=ORGANIZATION_ADMINS_GROUP)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {"change_apikey", "change_budget", "change_modelroute"} <= codenames
