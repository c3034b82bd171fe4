"""Single sign-on to the admin against a local OpenID Connect provider the test starts:
users created on first sign-in, organization and role from the claims, refused when the
claims name no organization, the role following the provider at each sign-in, local
passwords optional."""

from __future__ import annotations

import urllib.parse
import urllib.request

import pytest

from accounts.models import AuditLogEntry, Membership, User
from accounts.tests.oidc_provider import IdentityProvider

pytestmark = pytest.mark.django_db


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def identity_provider(settings):
    with IdentityProvider(client_id="synthlang-admin", client_secret="s3cret-client") as idp:
        for name, value in idp.settings().items():
            setattr(settings, name, value)
        settings.AUTHENTICATION_BACKENDS = [
            *settings.AUTHENTICATION_BACKENDS,
            "accounts.oidc.OrganizationOIDCBackend",
        ]
        yield idp


def _sign_in(client, idp, claims: dict):
    """What a browser does: to the provider and back with the code."""
    idp.current_user = claims
    start = client.get("/oidc/authenticate/", {"next": "/admin/"})
    assert start.status_code == 302
    authorize = start["Location"]
    assert authorize.startswith(f"{idp.base_url}/authorize?")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(authorize, timeout=10)
        raise AssertionError("the provider did not redirect back")
    except urllib.error.HTTPError as redirect:
        assert redirect.code == 302
        callback = redirect.headers["Location"]
    parts = urllib.parse.urlsplit(callback)
    return client.get(parts.path, dict(urllib.parse.parse_qsl(parts.query)))


def _claims(email: str, organization, groups: list[str]) -> dict:
    return {
        "sub": f"sub-{email}",
        "email": email,
        "email_verified": True,
        "preferred_username": email.split("@")[0],
        "organization": organization,
        "groups": groups,
    }


def test_a_first_sign_in_creates_the_user_in_the_claimed_organization_as_admin(
    client, identity_provider, org_a
):
    answer = _sign_in(client, identity_provider, _claims("dana@corp.test", "org-a", ["admin"]))

    assert answer.status_code == 302 and answer["Location"] == "/admin/"
    user = User.objects.get(email="dana@corp.test")
    assert user.username == "dana" and not user.has_usable_password()
    assert Membership.objects.get(user=user, organization=org_a).role == "admin"
    assert user.is_staff  # an organization admin may use the admin site
    page = client.get("/admin/")
    assert page.status_code == 200 and "Org A" in page.content.decode()


def test_the_role_comes_from_the_groups_and_follows_the_provider_at_each_sign_in(
    client, identity_provider, org_a
):
    _sign_in(client, identity_provider, _claims("eli@corp.test", "org-a", ["engineers"]))
    user = User.objects.get(email="eli@corp.test")
    assert Membership.objects.get(user=user).role == "basic"  # no mapped group: DEFAULT_ROLE
    assert not user.is_staff
    assert client.get("/admin/").status_code == 302  # members do not use the admin

    client.logout()
    _sign_in(client, identity_provider, _claims("eli@corp.test", "org-a", ["premium", "x"]))
    assert Membership.objects.get(user=user).role == "premium"
    assert AuditLogEntry.objects.filter(event="member.role_changed", actor=user).exists()


def test_claims_naming_no_organization_of_the_platform_are_refused(
    client, identity_provider, org_a
):
    answer = _sign_in(client, identity_provider, _claims("mal@evil.test", "not-ours", ["admin"]))

    assert answer.status_code == 302 and answer["Location"] != "/admin/"
    assert not User.objects.filter(email="mal@evil.test").exists()
    assert client.get("/admin/").status_code == 302


def test_a_token_for_another_client_is_not_accepted(client, identity_provider, org_a, settings):
    settings.OIDC_RP_CLIENT_ID = "someone-else"
    start = client.get("/oidc/authenticate/")
    opener = urllib.request.build_opener(_NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(start["Location"], timeout=10)
    assert refused.value.code == 400


def test_sign_in_urls_are_404_while_single_sign_on_is_off(client, org_a):
    assert client.get("/oidc/authenticate/").status_code == 404
    assert "company account" not in client.get("/admin/login/").content.decode()


def test_the_sign_in_page_offers_the_provider_when_it_is_on(client, identity_provider):
    assert "Sign in with your company account" in client.get("/admin/login/").content.decode()


def _password_sign_in(client, username: str, password: str) -> bool:
    answer = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    return answer.status_code == 302


def test_local_passwords_can_be_limited_to_platform_staff(client, settings, alice):
    settings.ADMIN_LOCAL_PASSWORDS = False
    assert not _password_sign_in(client, "alice", "alice-password-1")
    User.objects.create_superuser("root", "root@example.com", "root-password-1")
    assert _password_sign_in(client, "root", "root-password-1")

    settings.ADMIN_LOCAL_PASSWORDS = True
    client.logout()
    assert _password_sign_in(client, "alice", "alice-password-1")
