"""Members are invited by e-mail, with one answer whoever the address belongs to."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Invitation, Membership, User

pytestmark = pytest.mark.django_db

MEMBERS_URL = "/api/members/"


def _invite_through_the_api(client, email: str, role: str = "basic"):
    response = client.post(MEMBERS_URL, {"email": email, "role": role}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    body.pop("expires_at")
    return body


def _link(message) -> str:
    return re.search(r"http://testserver(/invitations/[^/\s]+/)", message.body).group(1)


def test_the_answer_is_the_same_whoever_the_address_belongs_to(
    alice_client, bob, charlie, django_capture_on_commit_callbacks
):
    """charlie is in another organization; nobody has the second address; bob is a member."""
    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            _invite_through_the_api(alice_client, address)
            for address in ("charlie@example.com", "nobody-at-all@example.org", "bob@example.com")
        ]
    for answer, address in zip(
        answers,
        ("charlie@example.com", "nobody-at-all@example.org", "bob@example.com"),
        strict=True,
    ):
        assert answer == {
            "object": "invitation",
            "email": address,
            "role": "basic",
            "status": "sent",
        }
    assert [message.to for message in mail.outbox] == [
        ["charlie@example.com"],
        ["nobody-at-all@example.org"],
        ["bob@example.com"],
    ]
    # Nobody joined: joining is the invited person's decision.
    assert not Membership.objects.filter(user=charlie, organization__slug="org-a").exists()


def test_the_api_takes_no_username(alice_client, charlie):
    response = alice_client.post(MEMBERS_URL, {"username": "charlie"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "email"


def test_only_admins_invite(bob_client):
    response = bob_client.post(MEMBERS_URL, {"email": "x@example.com"}, format="json")
    assert response.status_code == 403


def test_the_admin_invites_by_email_with_one_answer(
    client, alice, org_a, charlie, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    pages = []
    with django_capture_on_commit_callbacks(execute=True):
        for address in ("charlie@example.com", "nobody-at-all@example.org"):
            response = client.post(
                "/admin/accounts/invitation/add/",
                {"organization": org_a.pk, "email": address, "role": "basic"},
                follow=True,
            )
            assert response.status_code == 200
            notices = [
                str(message).replace(address, "ADDRESS") for message in response.context["messages"]
            ]
            pages.append((response.redirect_chain, notices))
    assert pages[0] == pages[1]
    assert pages[0][1] == ["Invitation sent to ADDRESS."]
    assert len(mail.outbox) == 2


def test_an_organization_admin_cannot_add_members_by_username(client, alice, org_a, charlie):
    client.force_login(alice)
    response = client.post(
        "/admin/accounts/membership/add/",
        {"organization": org_a.pk, "username": "charlie", "email": "", "role": "basic"},
    )
    assert response.status_code == 403
    assert not Membership.objects.filter(user=charlie, organization=org_a).exists()


def test_a_new_person_accepts_by_choosing_a_password(
    alice_client, org_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _invite_through_the_api(alice_client, "Dave@Example.com", role="premium")
    link = _link(mail.outbox[0])
    browser = Client()
    page = browser.get(link)
    assert page.status_code == 200 and b"Choose a password" in page.content

    response = browser.post(
        link, {"password": "a-long-new-pass-42", "password_again": "a-long-new-pass-42"}
    )
    assert response.status_code == 200 and b"You joined" in response.content
    dave = User.objects.get(username="dave@example.com")
    assert dave.check_password("a-long-new-pass-42")
    assert Membership.objects.get(user=dave, organization=org_a).role == "premium"
    # The link works once.
    assert browser.get(link).status_code == 404


def test_someone_with_an_account_signs_in_to_accept(
    alice_client, org_a, org_b, charlie, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _invite_through_the_api(alice_client, "charlie@example.com")
    link = _link(mail.outbox[0])
    browser = Client()
    assert b"charlie" in browser.get(link).content  # the reader owns the address

    wrong = browser.post(link, {"password": "not-charlies"})
    assert b"not right" in wrong.content
    assert not Membership.objects.filter(user=charlie, organization=org_a).exists()

    browser.post(link, {"password": "charlie-password-1"})
    assert Membership.objects.get(user=charlie, organization=org_a).role == "basic"
    assert Membership.objects.get(user=charlie, organization=org_b).role == "admin"


def test_an_expired_or_replaced_invitation_does_not_work(
    alice_client, org_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _invite_through_the_api(alice_client, "erin@example.com")
        _invite_through_the_api(alice_client, "erin@example.com")
    first, second = (_link(message) for message in mail.outbox)
    assert Client().get(first).status_code == 404  # replaced by the second
    Invitation.objects.update(expires_at=timezone.now())
    assert Client().get(second).status_code == 404
    assert Client().get("/invitations/made-up-token/").status_code == 404
