"""The management API beyond keys: who may change members, provider keys, routes,
budgets, prices and organizations, and that nobody reaches another organization's."""

from __future__ import annotations

import pytest

from accounts import services
from accounts.models import ApiKey, AuditLogEntry, Membership, ProviderCredential
from billing.models import Budget, Price
from proxy.models import Deployment, ModelRoute

pytestmark = pytest.mark.django_db


def assert_error(response, status: int):
    assert response.status_code == status, response.content
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.fixture
def staff_client(org_b):
    from rest_framework.test import APIClient

    staff, _ = services.user_get_or_create(username="root", email="root@example.com")
    staff.is_superuser = staff.is_staff = True
    staff.save()
    services.membership_set(organization=org_b, user=staff, role="admin", actor=None)
    _, plaintext = services.api_key_create(organization=org_b, user=staff, actor=staff)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


# --- members ---------------------------------------------------------------------------


def test_an_admin_changes_a_role_and_removes_a_member_whose_keys_are_revoked(
    alice_client, bob, bob_key
):
    response = alice_client.patch("/api/members/bob/", {"role": "premium"}, format="json")
    assert response.status_code == 200 and response.json()["role"] == "premium"

    response = alice_client.delete("/api/members/bob/")
    assert response.status_code == 204
    assert not Membership.objects.filter(user=bob).exists()
    assert ApiKey.objects.get(user=bob).revoked_at is not None
    events = set(AuditLogEntry.objects.values_list("event", flat=True))
    assert {"member.role_changed", "member.removed"} <= events


def test_the_last_admin_can_be_neither_demoted_nor_removed(alice_client, alice):
    assert_error(alice_client.patch("/api/members/alice/", {"role": "basic"}, format="json"), 400)
    assert_error(alice_client.delete("/api/members/alice/"), 400)
    assert Membership.objects.get(user=alice).role == "admin"


def test_a_basic_member_changes_no_member_and_another_organizations_member_is_404(
    bob_client, alice_client, charlie
):
    assert_error(bob_client.patch("/api/members/alice/", {"role": "basic"}, format="json"), 403)
    assert_error(alice_client.delete("/api/members/charlie/"), 404)
    assert Membership.objects.filter(user=charlie).exists()


# --- key rotation --------------------------------------------------------------------


def test_rotation_without_grace_revokes_the_old_key_at_once(alice_client, alice_key):
    old = ApiKey.objects.get(prefix=alice_key[len("sk-syn-") :][:8])
    helper = services.api_key_create(organization=old.organization, user=old.user, actor=None)
    response = alice_client.post(f"/api/keys/{helper[0].pk}/rotate/", {}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["key"].startswith("sk-syn-") and body["replaces"]["status"] == "revoked"


def test_rotation_grace_keeps_the_earlier_expiry_and_is_bounded(alice_client, alice, org_a):
    key, _ = services.api_key_create(organization=org_a, user=alice, actor=None)
    response = alice_client.post(
        f"/api/keys/{key.pk}/rotate/", {"grace_seconds": 3600}, format="json"
    )
    assert response.status_code == 201
    key.refresh_from_db()
    assert key.revoked_at is None and key.expires_at is not None
    assert_error(
        alice_client.post(f"/api/keys/{key.pk}/rotate/", {"grace_seconds": -1}, format="json"),
        400,
    )


def test_a_member_may_not_rotate_and_nobody_rotates_another_organizations_key(
    bob_client, alice_client, charlie_key
):
    charlie_api_key = ApiKey.objects.get(prefix=charlie_key[len("sk-syn-") :][:8])
    assert_error(alice_client.post(f"/api/keys/{charlie_api_key.pk}/rotate/"), 404)
    bob_own = ApiKey.objects.filter(user__username="bob").first()
    if bob_own is not None:
        assert_error(bob_client.post(f"/api/keys/{bob_own.pk}/rotate/"), 403)


# --- provider keys -------------------------------------------------------------------


def test_provider_keys_are_set_and_replaced_but_never_returned(alice_client, org_a):
    secret = "sk-proj-abcdefghijklmnop1234"
    response = alice_client.post(
        "/api/provider-keys/", {"provider": "openai", "key": secret}, format="json"
    )
    assert response.status_code == 200 and response.json()["last_four"] == "1234"
    assert secret not in response.content.decode()
    replaced = alice_client.post(
        "/api/provider-keys/",
        {"provider": "openai", "key": "sk-proj-zzzzzzzzzz9999"},
        format="json",
    )
    assert replaced.json()["id"] == response.json()["id"]
    listed = alice_client.get("/api/provider-keys/")
    assert [item["last_four"] for item in listed.json()["data"]] == ["9999"]
    assert "sk-proj" not in listed.content.decode()
    assert ProviderCredential.objects.get(organization=org_a).encrypted_key != secret


def test_provider_keys_are_for_admins_of_their_organization_only(
    bob_client, charlie_client, alice_client
):
    created = alice_client.post(
        "/api/provider-keys/", {"provider": "anthropic", "key": "sk-ant-secret-0042"}, format="json"
    ).json()
    assert_error(bob_client.get("/api/provider-keys/"), 403)
    assert_error(charlie_client.get(f"/api/provider-keys/{created['id']}/"), 404)
    assert_error(charlie_client.delete(f"/api/provider-keys/{created['id']}/"), 404)
    assert ProviderCredential.objects.filter(pk=created["id"]).exists()


def test_a_provider_key_base_url_goes_through_the_outbound_policy(alice_client):
    response = alice_client.post(
        "/api/provider-keys/",
        {"provider": "openai", "key": "sk-x-0001", "base_url": "http://10.0.0.8/v1"},
        format="json",
    )
    assert_error(response, 400)


# --- routes and deployments -------------------------------------------------------------


def test_routes_and_deployments_are_managed_by_admins_and_scoped(
    alice_client, bob_client, charlie_client, org_a, org_b
):
    foreign = services.provider_credential_set(
        organization=org_b, provider="openai", key="sk-b-0009", actor=None
    )
    response = alice_client.post(
        "/api/routes/",
        {
            "public_name": "team-fast",
            "deployments": [{"provider": "fake", "upstream_model": "fake-small"}],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    route = response.json()
    assert route["owner"] == "organization" and len(route["deployments"]) == 1

    # The other organization's key cannot be named; bob cannot change routes.
    assert_error(
        alice_client.post(
            f"/api/routes/{route['id']}/deployments/",
            {"provider": "openai", "upstream_model": "gpt-4o", "credential": foreign.pk},
            format="json",
        ),
        400,
    )
    assert_error(bob_client.post("/api/routes/", {"public_name": "x"}, format="json"), 403)
    assert_error(charlie_client.get(f"/api/routes/{route['id']}/"), 404)
    deployment_id = route["deployments"][0]["id"]
    assert_error(
        charlie_client.patch(f"/api/deployments/{deployment_id}/", {"weight": 5}, format="json"),
        404,
    )
    assert not any(
        item["public_name"] == "team-fast"
        for item in charlie_client.get("/api/routes/").json()["data"]
    )

    changed = alice_client.patch(f"/api/deployments/{deployment_id}/", {"weight": 5}, format="json")
    assert changed.status_code == 200 and Deployment.objects.get(pk=deployment_id).weight == 5
    assert (
        alice_client.patch(f"/api/routes/{route['id']}/", {"enabled": False}, format="json").json()[
            "enabled"
        ]
        is False
    )
    assert_error(
        alice_client.post("/api/routes/", {"public_name": "team-fast"}, format="json"), 400
    )
    assert alice_client.delete(f"/api/routes/{route['id']}/").status_code == 204
    assert not ModelRoute.objects.filter(organization=org_a).exists()


# --- budgets and prices -----------------------------------------------------------------


def test_budgets_for_the_organization_a_member_and_a_key(alice_client, bob_client, bob, org_a):
    key, _ = services.api_key_create(organization=org_a, user=bob, actor=None)
    for body in (
        {"scope": "organization", "monthly_limit_micros": 10_000_000},
        {"scope": "member", "user": "bob", "monthly_limit_micros": 2_000_000},
        {"scope": "key", "api_key": key.pk, "soft_limit_micros": 500_000},
    ):
        response = alice_client.post("/api/budgets/", body, format="json")
        assert response.status_code == 200, response.content
    assert Budget.objects.filter(organization=org_a).count() == 3
    again = alice_client.post(
        "/api/budgets/", {"scope": "organization", "monthly_limit_micros": 1}, format="json"
    )
    assert again.status_code == 200 and Budget.objects.filter(organization=org_a).count() == 3
    assert_error(
        alice_client.post("/api/budgets/", {"scope": "member", "user": "charlie"}, format="json"),
        400,
    )
    assert_error(bob_client.post("/api/budgets/", {"scope": "organization"}, format="json"), 403)
    assert alice_client.delete(f"/api/budgets/{again.json()['id']}/").status_code == 204


def test_another_organizations_budget_is_404(alice_client, charlie_client):
    budget = alice_client.post(
        "/api/budgets/", {"scope": "organization", "monthly_limit_micros": 7}, format="json"
    ).json()
    assert_error(charlie_client.delete(f"/api/budgets/{budget['id']}/"), 404)
    assert charlie_client.get("/api/budgets/").json()["data"] == []


def test_prices_are_listed_to_keys_and_set_by_staff_only(alice_client, staff_client):
    body = {
        "model_pattern": "team-model-*",
        "input_per_mtok_micros": 1_000_000,
        "output_per_mtok_micros": 4_000_000,
    }
    assert_error(alice_client.post("/api/prices/", body, format="json"), 403)
    created = staff_client.post("/api/prices/", body, format="json")
    assert created.status_code == 201, created.content
    assert Price.objects.filter(model_pattern="team-model-*").exists()
    listed = alice_client.get("/api/prices/").json()["data"]
    assert any(item["model_pattern"] == "team-model-*" for item in listed)
    assert_error(
        staff_client.post(
            "/api/prices/", {**body, "cached_input_per_mtok_micros": 2_000_000}, format="json"
        ),
        400,
    )


# --- organizations ---------------------------------------------------------------------


def test_organizations_are_created_by_staff_and_changed_by_their_admins(
    alice_client, staff_client, org_a
):
    assert_error(alice_client.post("/api/organizations/", {"name": "Mine"}, format="json"), 403)
    assert_error(alice_client.get("/api/organizations/"), 403)
    created = staff_client.post("/api/organizations/", {"name": "Acme Labs"}, format="json")
    assert created.status_code == 201 and created.json()["slug"] == "acme-labs"
    assert_error(
        staff_client.post("/api/organizations/", {"name": "Acme Labs"}, format="json"), 400
    )

    changed = alice_client.patch(
        "/api/organization/", {"compression_level": "medium", "rpm_limit": 100}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["compression_level"] == "medium"
    org_a.refresh_from_db()
    assert org_a.rpm_limit == 100
    # Sharing the cache across tenants stays the platform's decision.
    assert_error(
        alice_client.patch("/api/organization/", {"cache_scope": "platform"}, format="json"), 403
    )


def test_staff_keys_act_in_any_organization_and_other_keys_in_their_own(
    staff_client, alice_client, org_a
):
    listed = staff_client.get("/api/keys/?organization=org-a")
    assert listed.status_code == 200
    assert_error(alice_client.get("/api/keys/?organization=org-b"), 404)


def test_the_schema_describes_every_management_operation(alice_client):
    schema = alice_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    operations = {
        operation["operationId"]
        for path in schema.json()["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    assert {
        "api_keys_rotate",
        "members_update",
        "members_remove",
        "provider_keys_set",
        "model_routes_create",
        "deployments_update",
        "budgets_set",
        "prices_create",
        "organizations_create",
        "organization_update",
    } <= operations
