"""The management API: keys and members of the caller's organization, and nobody else's."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditLogEntry
from accounts.selectors import principal_cache_forget

pytestmark = pytest.mark.django_db

KEYS_URL = "/api/keys/"
MEMBERS_URL = "/api/members/"


def key_of(plaintext: str) -> ApiKey:
    return ApiKey.objects.get(prefix=plaintext[len("sk-syn-") :][:8])


def assert_openai_error(response, status: int, code: str):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}
    return error


# --- GET /api/keys/ ------------------------------------------------------------------------


def test_an_admin_lists_every_key_of_the_organization_masked(alice_client, alice_key, bob_key):
    response = alice_client.get(KEYS_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    listed = {item["masked_key"] for item in body["data"]}
    assert listed == {key_of(alice_key).masked, key_of(bob_key).masked}
    assert alice_key not in response.content.decode()
    assert bob_key not in response.content.decode()
    for item in body["data"]:
        assert "key" not in item and "key_hash" not in item
        assert key_of(alice_key).key_hash not in response.content.decode()


def test_a_member_lists_only_their_own_keys(bob_client, bob_key, alice_key):
    response = bob_client.get(KEYS_URL)

    assert response.status_code == 200
    assert [item["masked_key"] for item in response.json()["data"]] == [key_of(bob_key).masked]


def test_another_organizations_admin_lists_none_of_org_a_keys(
    charlie_client, charlie_key, alice_key, bob_key
):
    response = charlie_client.get(KEYS_URL)

    assert [item["masked_key"] for item in response.json()["data"]] == [key_of(charlie_key).masked]


# --- POST /api/keys/ ---------------------------------------------------------------------


def test_an_admin_creates_their_own_key_and_sees_it_once(alice_client, alice):
    response = alice_client.post(KEYS_URL, {"name": "laptop"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key"].startswith("sk-syn-")
    assert body["user"] == "alice"
    assert response["Cache-Control"] == "no-store"
    created = ApiKey.objects.get(pk=body["id"])
    assert created.user == alice and created.name == "laptop"
    # The key works, and no later answer carries it again.
    new_client = APIClient()
    new_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['key']}")
    assert new_client.get(KEYS_URL).status_code == 200
    assert body["key"] not in alice_client.get(KEYS_URL).content.decode()
    assert body["key"] not in alice_client.get(f"{KEYS_URL}{created.pk}/").content.decode()


def test_a_member_cannot_create_keys_even_their_own(bob_client, bob):
    before = ApiKey.objects.filter(user=bob).count()
    response = bob_client.post(KEYS_URL, {"name": "laptop"}, format="json")

    assert_openai_error(response, 403, "permission_denied")
    assert ApiKey.objects.filter(user=bob).count() == before


def test_an_admin_creates_a_key_for_another_member(alice_client, alice, bob):
    response = alice_client.post(
        KEYS_URL,
        {"name": "for bob", "user": "bob", "allowed_models": ["gpt-4o*"], "rpm_limit": 10},
        format="json",
    )

    assert response.status_code == 201, response.content
    created = ApiKey.objects.get(pk=response.json()["id"])
    assert created.user == bob
    assert created.allowed_models == ["gpt-4o*"] and created.rpm_limit == 10
    entry = AuditLogEntry.objects.get(event="api_key.created", target_id=str(created.pk))
    assert entry.actor == alice


def test_a_member_cannot_create_a_key_for_someone_else(bob_client, alice):
    response = bob_client.post(KEYS_URL, {"user": "alice"}, format="json")

    assert_openai_error(response, 403, "permission_denied")
    assert not ApiKey.objects.filter(user=alice).exists()


def test_an_admin_cannot_create_a_key_for_another_organizations_user(alice_client, charlie):
    response = alice_client.post(KEYS_URL, {"user": "charlie"}, format="json")

    error = assert_openai_error(response, 400, "invalid_request_error")
    assert error["param"] == "user"
    assert not ApiKey.objects.filter(user=charlie).exists()


@pytest.mark.parametrize("field", ["rpm_limit", "tpm_limit"])
def test_a_limit_beyond_the_databases_integer_is_a_400_not_a_500(alice_client, alice, field):
    """Above 2**31 - 1 the integer column overflowed (issue 18, finding 11)."""
    response = alice_client.post(KEYS_URL, {"name": "huge", field: 2**31}, format="json")

    error = assert_openai_error(response, 400, "invalid_request_error")
    assert error["param"] == field
    assert not ApiKey.objects.filter(name="huge").exists()


def test_a_key_cannot_be_created_already_expired(alice_client):
    response = alice_client.post(KEYS_URL, {"expires_at": "2000-01-01T00:00:00Z"}, format="json")

    error = assert_openai_error(response, 400, "invalid_request_error")
    assert error["param"] == "expires_at"


# --- GET /api/keys/{id}/ and POST /api/keys/{id}/revoke/ ----------------------------------


def test_an_admin_revokes_a_members_key(alice_client, alice, bob_key, bob_client):
    api_key = key_of(bob_key)

    response = alice_client.post(f"{KEYS_URL}{api_key.pk}/revoke/")

    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert AuditLogEntry.objects.get(event="api_key.revoked", target_id=str(api_key.pk)).actor == (
        alice
    )
    assert_openai_error(bob_client.get(KEYS_URL), 401, "invalid_api_key")


def test_a_member_revokes_their_own_key(bob_client, bob_key):
    response = bob_client.post(f"{KEYS_URL}{key_of(bob_key).pk}/revoke/")

    assert response.status_code == 200
    assert key_of(bob_key).revoked_at is not None


def test_bob_cannot_revoke_alices_key(bob_client, alice_key):
    api_key = key_of(alice_key)

    response = bob_client.post(f"{KEYS_URL}{api_key.pk}/revoke/")

    assert_openai_error(response, 404, "not_found")
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "{id}/"), ("post", "{id}/revoke/")],
)
def test_charlie_gets_404_for_every_org_a_key(charlie_client, alice_key, bob_key, method, path):
    for plaintext in (alice_key, bob_key):
        api_key = key_of(plaintext)

        response = getattr(charlie_client, method)(KEYS_URL + path.format(id=api_key.pk))

        assert_openai_error(response, 404, "not_found")
        api_key.refresh_from_db()
        assert api_key.revoked_at is None


def test_a_missing_key_id_and_another_organizations_key_id_answer_alike(charlie_client, alice_key):
    foreign = charlie_client.get(f"{KEYS_URL}{key_of(alice_key).pk}/")
    missing = charlie_client.get(f"{KEYS_URL}999999/")

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


def test_an_admin_reads_one_key(alice_client, bob_key):
    api_key = key_of(bob_key)

    response = alice_client.get(f"{KEYS_URL}{api_key.pk}/")

    assert response.status_code == 200
    assert response.json()["masked_key"] == api_key.masked
    assert response.json()["user"] == "bob"


# --- GET /api/members/ -----------------------------------------------------------------


def test_members_lists_the_organizations_members_and_roles(alice_client, bob, charlie):
    response = alice_client.get(MEMBERS_URL)

    assert response.status_code == 200
    members = {item["username"]: item["role"] for item in response.json()["data"]}
    assert members == {"alice": "admin", "bob": "basic"}


def test_charlie_sees_only_org_b_members(charlie_client, alice, bob):
    response = charlie_client.get(MEMBERS_URL)

    assert [item["username"] for item in response.json()["data"]] == ["charlie"]


# --- Authentication and organization choice ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("get", KEYS_URL), ("post", KEYS_URL), ("get", MEMBERS_URL)]
)
def test_every_endpoint_needs_credentials(db, method, path):
    response = getattr(APIClient(), method)(path)

    assert_openai_error(response, 401, "invalid_api_key")


def test_a_signed_in_user_names_their_organization(alice, org_a, bob_key):
    client = APIClient()
    client.force_login(alice)

    response = client.get(KEYS_URL, {"organization": org_a.slug})

    assert response.status_code == 200
    assert [item["masked_key"] for item in response.json()["data"]] == [key_of(bob_key).masked]


def test_a_signed_in_user_cannot_name_another_organization(alice, org_b, charlie_key):
    client = APIClient()
    client.force_login(alice)

    response = client.get(KEYS_URL, {"organization": org_b.slug})

    assert_openai_error(response, 404, "not_found")


def test_a_key_cannot_act_in_another_organization(alice_client, org_b, charlie_key):
    response = alice_client.get(KEYS_URL, {"organization": org_b.slug})

    assert_openai_error(response, 404, "not_found")


def test_a_demoted_admin_loses_admin_rights_on_the_api_at_once(alice, alice_client, org_a, bob_key):
    from accounts import services

    services.membership_set(organization=org_a, user=alice, role="basic", actor=None)
    principal_cache_forget()

    response = alice_client.post(f"{KEYS_URL}{key_of(bob_key).pk}/revoke/")

    assert_openai_error(response, 404, "not_found")
    assert key_of(bob_key).revoked_at is None


# --- Schema and docs ---------------------------------------------------------------------


def test_the_openapi_schema_describes_every_endpoint(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") else None
    text = response.content.decode()
    for path in (
        "/api/keys/",
        "/api/keys/{key_id}/",
        "/api/keys/{key_id}/revoke/",
        "/api/members/",
    ):
        assert path in (schema["paths"] if schema else text)
    assert "ApiKeyAuth" in text


def test_the_docs_page_serves_swagger_ui_from_local_static_files(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn." not in html
