"""The library in the admin: scoped to the organizations one administers, versions added
through the service (numbered, audited) and then read only, labels moved, diffs shown."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditLogEntry
from prompts.models import PromptLabel, PromptVersion

pytestmark = pytest.mark.django_db


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_organization_admin_sees_only_their_prompts(greeting, alice, charlie):
    changelist = reverse("admin:prompts_prompt_changelist")

    assert "greeting" in _signed_in(alice).get(changelist).content.decode()
    assert "greeting" not in _signed_in(charlie).get(changelist).content.decode()


@pytest.mark.parametrize(
    "name",
    ["admin:prompts_prompt_change", "admin:prompts_prompt_diff"],
)
def test_another_organizations_prompt_pages_are_404(greeting, charlie, name):
    assert _signed_in(charlie).get(reverse(name, args=[greeting.pk])).status_code == 404


def test_the_diff_page_colours_added_and_removed_lines(greeting, alice):
    url = reverse("admin:prompts_prompt_diff", args=[greeting.pk])
    page = _signed_in(alice).get(url, {"from": 1, "to": 2}).content.decode()

    assert '<span class="del">-Greet {{name}} warmly</span>' in page
    assert '<span class="add">+Say hi to {{name}} from the v2 prompt</span>' in page


def test_the_diff_page_refuses_an_unknown_version(greeting, alice):
    url = reverse("admin:prompts_prompt_diff", args=[greeting.pk])

    assert _signed_in(alice).get(url, {"from": 1, "to": 9}).status_code == 404


def test_a_version_added_in_the_admin_is_numbered_and_audited(greeting, alice):
    response = _signed_in(alice).post(
        reverse("admin:prompts_promptversion_add"),
        {
            "prompt": greeting.pk,
            "messages": json.dumps([{"role": "user", "content": "Hello {{name}}"}]),
            "model": "",
            "parameters": "{}",
            "commit_message": "from the admin",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    version = PromptVersion.objects.get(prompt=greeting, number=3)
    assert version.author == alice
    assert AuditLogEntry.objects.filter(event="prompt.version_created", actor=alice).exists()


def test_a_template_that_is_not_chat_messages_is_refused_in_the_admin(greeting, alice):
    response = _signed_in(alice).post(
        reverse("admin:prompts_promptversion_add"),
        {"prompt": greeting.pk, "messages": '"just text"', "parameters": "{}"},
    )

    assert response.status_code == 200  # the form again, with the error
    assert "messages must be a list" in response.content.decode()
    assert PromptVersion.objects.filter(prompt=greeting).count() == 2


def test_a_version_cannot_be_edited_in_the_admin(greeting, alice):
    version = greeting.versions.get(number=1)
    url = reverse("admin:prompts_promptversion_change", args=[version.pk])
    _signed_in(alice).post(url, {"commit_message": "rewritten", "model": "gpt-4o"})

    version.refresh_from_db()
    assert version.commit_message == "first"


def test_moving_a_label_in_the_admin(greeting, alice):
    label = PromptLabel.objects.get(prompt=greeting, name="production")
    url = reverse("admin:prompts_promptlabel_change", args=[label.pk])
    response = _signed_in(alice).post(url, {"version": greeting.versions.get(number=2).pk})

    assert response.status_code == 302, response.content.decode()[:2000]
    label.refresh_from_db()
    assert label.version.number == 2
    assert AuditLogEntry.objects.filter(event="prompt.label_set", actor=alice).exists()


def test_another_organizations_versions_are_not_offered_for_a_label(greeting, charlie, org_b):
    page = _signed_in(charlie).get(reverse("admin:prompts_promptlabel_add")).content.decode()

    assert "greeting v1" not in page
