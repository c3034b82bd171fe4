"""The ops commands: thin wrappers over the services, safe to script."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts import keys, services
from accounts.crypto import decrypt_secret
from accounts.models import ApiKey, Membership, Organization, ProviderCredential, User

pytestmark = pytest.mark.django_db


def run(command: str, **options) -> str:
    output = io.StringIO()
    call_command(command, stdout=output, **options)
    return output.getvalue()


def key_of(plaintext: str) -> ApiKey:
    return ApiKey.objects.get(prefix=keys.lookup_prefix(plaintext))


# --- create_api_key ----------------------------------------------------------------------


def test_create_api_key_prints_the_key_alone_on_the_last_line_and_it_works(db):
    output = run("create_api_key", org="acme", user="dana", role="admin", name="deploy")

    last_line = output.rstrip("\n").splitlines()[-1]
    assert last_line.startswith("sk-syn-") and last_line == last_line.strip()
    assert keys.lookup_prefix(last_line) is not None
    assert output.count(last_line) == 1
    api_key = key_of(last_line)
    assert (api_key.organization.slug, api_key.user.username, api_key.name) == (
        "acme",
        "dana",
        "deploy",
    )
    assert Membership.objects.get(user__username="dana").role == "admin"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {last_line}")
    response = client.get("/api/keys/")
    assert response.status_code == 200
    assert [item["masked_key"] for item in response.json()["data"]] == [api_key.masked]


def test_create_api_key_reuses_an_existing_member_and_keeps_their_role(org_a, bob):
    output = run("create_api_key", org="org-a", user="bob", expires_in_days=7)

    api_key = key_of(output.splitlines()[-1])
    assert api_key.user == bob and api_key.expires_at is not None
    assert Membership.objects.get(user=bob, organization=org_a).role == "basic"
    assert Organization.objects.filter(slug="org-a").count() == 1


def test_create_api_key_refuses_a_non_positive_expiry(db):
    with pytest.raises(CommandError):
        run("create_api_key", org="acme", user="dana", expires_in_days=0)
    assert not ApiKey.objects.exists()


# --- set_provider_key --------------------------------------------------------------------


def test_set_provider_key_stores_the_key_encrypted(org_a):
    secret = "sk-proj-command-line-secret-7890"

    output = run("set_provider_key", org="org-a", provider="openai", key=secret)

    credential = ProviderCredential.objects.get(organization=org_a, provider="openai")
    assert secret not in credential.encrypted_key
    assert credential.encrypted_key.startswith("gAAAAA")  # a Fernet token
    assert decrypt_secret(credential.encrypted_key) == secret
    assert credential.last_four == "7890"
    assert secret not in output and "…7890" in output


def test_set_provider_key_without_an_organization_stores_a_platform_key(db):
    run(
        "set_provider_key",
        provider="openai",
        key="sk-platform-secret-0000",
        base_url="https://x.example/v1",
    )

    credential = ProviderCredential.objects.get(organization=None)
    assert credential.base_url == "https://x.example/v1"


def test_set_provider_key_refuses_an_unknown_organization(db):
    with pytest.raises(CommandError, match="no organization"):
        run("set_provider_key", org="nope", provider="openai", key="sk-whatever-123456")
    assert not ProviderCredential.objects.exists()


# --- revoke_api_key -----------------------------------------------------------------------


def test_revoke_api_key_by_prefix(bob_key):
    api_key = key_of(bob_key)

    output = run("revoke_api_key", prefix=api_key.prefix)

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert "revoked" in output and bob_key not in output


def test_revoke_api_key_accepts_the_key_itself(bob_key):
    run("revoke_api_key", prefix=bob_key)

    assert key_of(bob_key).revoked_at is not None


def test_revoke_api_key_dry_run_changes_nothing(bob_key):
    api_key = key_of(bob_key)

    output = run("revoke_api_key", prefix=api_key.prefix, dry_run=True)

    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    assert output.startswith("would revoke")


def test_revoke_api_key_with_an_unknown_prefix_fails(db):
    with pytest.raises(CommandError, match="no API key"):
        run("revoke_api_key", prefix="ZZZZZZZZ")


# --- Roles from the environment -------------------------------------------------------------


def test_admin_and_premium_users_from_settings_get_their_roles(settings, org_a, alice, bob):
    carol, _ = services.user_get_or_create(username="carol")
    services.membership_set(organization=org_a, user=carol, role=None, actor=None)
    settings.ADMIN_USERS = ["bob"]
    settings.PREMIUM_USERS = ["carol", "bob", "nobody-yet"]

    changed = services.roles_apply_from_settings()

    roles = dict(
        Membership.objects.filter(organization=org_a).values_list("user__username", "role")
    )
    assert roles == {"alice": "admin", "bob": "admin", "carol": "premium"}
    assert changed == 2
    bob.refresh_from_db()
    assert bob.is_staff, "an admin by settings may sign in to the admin"


def test_migrate_applies_the_roles_from_settings(settings, org_a, bob):
    settings.PREMIUM_USERS = ["bob"]

    call_command("migrate", verbosity=0)

    assert Membership.objects.get(user=bob, organization=org_a).role == "premium"


def test_new_members_get_the_default_role(settings, org_a):
    settings.DEFAULT_ROLE = "premium"
    erin, _ = services.user_get_or_create(username="erin")

    membership = services.membership_set(organization=org_a, user=erin, actor=None)

    assert membership.role == "premium"
    assert not User.objects.get(username="erin").is_staff
