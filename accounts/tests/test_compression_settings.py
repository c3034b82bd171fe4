"""An organization's compression settings in the admin and on the key's principal."""

from __future__ import annotations

import pytest

from accounts import selectors, services
from accounts.models import Organization

pytestmark = pytest.mark.django_db


def test_a_new_organization_compresses_tool_results_losslessly_by_default(org_a, alice_key):
    assert Organization.objects.get(pk=org_a.pk).compression_tool_results is True
    assert selectors.principal_for_key(alice_key).compression_tool_results is True


def test_the_tool_result_setting_reaches_the_principal_and_is_audited(org_a, alice, alice_key):
    services.organization_update_settings(
        organization=org_a, actor=alice, compression_tool_results=False
    )
    selectors.principal_cache_forget()
    assert selectors.principal_for_key(alice_key).compression_tool_results is False
    entry = org_a.audit_log.get(event="organization.settings_changed")
    assert entry.details["after"] == {"compression_tool_results": False}


def test_the_admin_shows_each_levels_measured_saving_and_risk_beside_the_setting(
    client, org_a, alice
):
    client.force_login(alice)
    response = client.get(f"/admin/accounts/organization/{org_a.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "compression_tool_results" in page
    assert "of 260 must-keep strings lost on held-out prompts" in page
    for risk in ("Lossless and safe on any text", "Never touches material", "telegraphic"):
        assert risk in page
