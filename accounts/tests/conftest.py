"""Fixtures of the admin tests: rows of every accounts model in two organizations, and the
platform's superuser."""

from __future__ import annotations

import pytest

from accounts import invitations, services
from accounts.models import (
    User,
)
from accounts.tests.admin_cast import ORG_A_PROVIDER_KEY, ORG_B_PROVIDER_KEY, PLATFORM_PROVIDER_KEY


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
