"""Which deployment serves a model, and with which key."""

from __future__ import annotations

import dataclasses

import pytest

from accounts import services
from accounts.crypto import decrypt_secret
from proxy import routing

pytestmark = pytest.mark.django_db


def test_platform_key_is_read_at_call_time_and_never_held_by_the_plan(settings, org_a):
    settings.OPENAI_API_KEY = "sk-platform-0123456789"
    plan = routing.default_plan(org_a.pk, "gpt-4o")
    assert (plan.provider, plan.upstream_model, plan.platform_key) == ("openai", "gpt-4o", True)
    assert "sk-platform" not in repr(dataclasses.astuple(plan))
    assert plan.target().api_key == "sk-platform-0123456789"
    settings.OPENAI_API_KEY = "sk-platform-rotated"
    assert plan.target().api_key == "sk-platform-rotated"


def test_an_organizations_own_key_stays_encrypted_in_the_plan(settings, org_a, alice):
    settings.OPENAI_API_KEY = "sk-platform-0123456789"
    services.provider_credential_set(
        organization=org_a, provider="openai", key="sk-org-a-secret", actor=alice
    )
    plan = routing.default_plan(org_a.pk, "gpt-4o")
    assert not plan.platform_key
    assert "sk-org-a-secret" not in repr(dataclasses.astuple(plan))
    assert decrypt_secret(plan.encrypted_key) == "sk-org-a-secret"
    assert plan.target().api_key == "sk-org-a-secret"


def test_without_any_key_the_fake_provider_answers(settings, org_a):
    settings.OPENAI_API_KEY = ""
    plan = routing.default_plan(org_a.pk, "gpt-4o")
    assert plan.provider == "fake" and plan.target().api_key == ""
