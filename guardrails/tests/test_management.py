"""The management API and the admin of guardrails: admins only, scoped, audited."""

import pytest
from django.test import Client

from accounts.models import ApiKey, AuditLogEntry
from guardrails.models import GuardrailRule, OrganizationGuardrails

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/api/guardrails/"
RULES_URL = "/api/guardrails/rules/"


def test_an_admin_sets_the_organizations_pii_mode_and_it_is_audited(alice_client, org_a):
    assert alice_client.get(SETTINGS_URL).json()["pii_mode"] == "off"
    response = alice_client.put(SETTINGS_URL, {"pii_mode": "mask"}, format="json")
    assert response.status_code == 200 and response.json()["pii_mode"] == "mask"
    assert OrganizationGuardrails.objects.get(organization=org_a).pii_mode == "mask"
    entry = AuditLogEntry.objects.get(event="guardrails.updated")
    assert entry.organization == org_a and entry.actor.username == "alice"
    assert entry.details == {"pii_mode": ["off", "mask"]}


def test_an_invalid_mode_is_a_400(alice_client):
    response = alice_client.put(SETTINGS_URL, {"pii_mode": "sometimes"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "pii_mode"


def test_a_member_who_is_not_an_admin_gets_403(bob_client):
    assert bob_client.get(SETTINGS_URL).status_code == 403
    assert (
        bob_client.post(RULES_URL, {"name": "x", "pattern": "y"}, format="json").status_code == 403
    )


def test_an_admin_sets_a_keys_mode(alice_client, bob_key):
    bob_api_key = ApiKey.objects.get(user__username="bob")
    url = f"/api/guardrails/keys/{bob_api_key.pk}/"
    response = alice_client.put(url, {"pii_mode": "block"}, format="json")
    assert response.status_code == 200 and response.json()["pii_mode"] == "block"
    assert alice_client.get(url).json()["pii_mode"] == "block"


def test_another_organizations_key_is_404(alice_client, charlie_key):
    charlie_api_key = ApiKey.objects.get(user__username="charlie")
    url = f"/api/guardrails/keys/{charlie_api_key.pk}/"
    assert alice_client.put(url, {"pii_mode": "off"}, format="json").status_code == 404


def test_rules_are_created_listed_edited_and_deleted(alice_client, org_a):
    created = alice_client.post(
        RULES_URL, {"name": "codename", "pattern": "project falcon"}, format="json"
    )
    assert created.status_code == 201
    rule_id = created.json()["id"]
    assert [r["name"] for r in alice_client.get(RULES_URL).json()["data"]] == ["codename"]
    patched = alice_client.patch(
        f"{RULES_URL}{rule_id}/", {"kind": "regex", "pattern": r"falcon-\d+"}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["kind"] == "regex"
    assert alice_client.delete(f"{RULES_URL}{rule_id}/").status_code == 204
    assert not GuardrailRule.objects.exists()
    events = set(AuditLogEntry.objects.values_list("event", flat=True))
    assert {
        "guardrails.rule_created",
        "guardrails.rule_updated",
        "guardrails.rule_deleted",
    } <= events


def test_a_catastrophic_regex_is_refused_with_a_400(alice_client):
    response = alice_client.post(
        RULES_URL, {"name": "slow", "kind": "regex", "pattern": "(a+)+$"}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "pattern"


def test_a_duplicate_rule_name_is_a_400(alice_client):
    alice_client.post(RULES_URL, {"name": "dup", "pattern": "a"}, format="json")
    response = alice_client.post(RULES_URL, {"name": "dup", "pattern": "b"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "name"


def test_another_organizations_rule_is_404(alice_client, charlie_client):
    rule_id = charlie_client.post(RULES_URL, {"name": "c", "pattern": "x"}, format="json").json()[
        "id"
    ]
    assert alice_client.get(f"{RULES_URL}{rule_id}/").status_code == 404
    assert alice_client.delete(f"{RULES_URL}{rule_id}/").status_code == 404
    assert alice_client.get(RULES_URL).json()["data"] == []


def test_the_schema_lists_the_guardrail_operations(alice_client):
    schema = Client().get("/api/schema/").content.decode()
    for operation in ("guardrails_update", "guardrail_rules_create", "guardrails_key_update"):
        assert operation in schema


def _admin_login(user):
    client = Client()
    client.force_login(user)
    return client


def test_an_organization_admin_sees_only_their_rules_in_the_admin(alice, charlie, org_a, org_b):
    from guardrails import services

    services.guardrail_rule_create(organization=org_a, name="ours", pattern="x", actor=None)
    theirs = services.guardrail_rule_create(
        organization=org_b, name="theirs", pattern="y", actor=None
    )
    client = _admin_login(alice)
    listing = client.get("/admin/guardrails/guardrailrule/")
    assert listing.status_code == 200
    assert b"ours" in listing.content and b"theirs" not in listing.content
    assert client.get(f"/admin/guardrails/guardrailrule/{theirs.pk}/change/").status_code == 404


def test_the_admin_form_refuses_a_catastrophic_regex(alice, org_a):
    client = _admin_login(alice)
    response = client.post(
        "/admin/guardrails/guardrailrule/add/",
        {
            "organization": org_a.pk,
            "name": "slow",
            "kind": "regex",
            "pattern": "(a+)+$",
            "action": "deny",
            "target": "both",
            "enabled": "on",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert b"too long" in response.content
    assert not GuardrailRule.objects.exists()


def test_the_admin_creates_a_rule_through_the_service(alice, org_a):
    client = _admin_login(alice)
    response = client.post(
        "/admin/guardrails/guardrailrule/add/",
        {
            "organization": org_a.pk,
            "name": "codename",
            "kind": "phrase",
            "pattern": "project falcon",
            "action": "deny",
            "target": "both",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    assert GuardrailRule.objects.get().name == "codename"
    assert AuditLogEntry.objects.filter(event="guardrails.rule_created", actor=alice).exists()
