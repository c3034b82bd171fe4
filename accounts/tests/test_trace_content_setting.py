"""The organization's switch for prompts and completions in traces: off by default, changed
by its admins through the management API and the admin, audited, on the key's principal."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import selectors
from accounts.models import AuditLogEntry, Organization

pytestmark = pytest.mark.django_db


def test_content_stays_out_of_traces_unless_the_organization_turns_it_on(org_a, alice_key):
    assert Organization.objects.get(pk=org_a.pk).trace_content is False
    assert selectors.principal_for_key(alice_key).trace_content is False


def test_an_admin_turns_it_on_through_the_api_and_a_member_cannot(
    org_a, alice_client, bob_client, alice_key
):
    refused = bob_client.patch("/api/organization/", {"trace_content": True}, format="json")
    assert refused.status_code == 403
    assert Organization.objects.get(pk=org_a.pk).trace_content is False

    changed = alice_client.patch("/api/organization/", {"trace_content": True}, format="json")
    assert changed.status_code == 200 and changed.json()["trace_content"] is True
    assert Organization.objects.get(pk=org_a.pk).trace_content is True
    assert selectors.principal_for_key(alice_key).trace_content is True
    entry = AuditLogEntry.objects.filter(organization=org_a).latest("pk")
    assert entry.details["after"] == {"trace_content": True}


def test_the_admin_form_offers_the_setting_to_the_organizations_admin(org_a, alice):
    alice.is_staff = True
    alice.save()
    client = Client()
    client.force_login(alice)
    page = client.get(f"/admin/accounts/organization/{org_a.pk}/change/").content.decode()
    assert 'name="trace_content"' in page
    assert "Prompts and completions in traces" in page
