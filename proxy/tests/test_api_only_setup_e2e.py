"""A new organization set up through the management API alone, on a live server: staff
create it and invite its admin, who joins by the e-mailed link; the admin adds a provider
key, a route, a budget and a key; a chat with that key is routed, accounted and held to
the budget; a rotated key keeps working for its grace period only."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from http.cookiejar import CookieJar

import openai
import pytest

from accounts import services
from accounts.models import AuditLogEntry, Membership
from billing.models import Budget, Price
from common.testing import live_server
from proxy.tests.conftest import UPSTREAM_KEY
from proxy.tests.test_openai_sdk_e2e import wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _call(base_url: str, method: str, path: str, key: str, body: dict | None = None):
    request = urllib.request.Request(
        f"{base_url}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _accept_invitation(base_url: str, log_path, password: str) -> None:
    """What the invited admin does: open the e-mailed link and choose a password."""
    link = None
    for _ in range(100):
        found = re.findall(r"http://127\.0\.0\.1:\d+/invitations/[^/\s]+/", log_path.read_text())
        if found:
            link = found[-1]
            break
        time.sleep(0.1)
    assert link, "the invitation e-mail was not sent"
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(link, timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "password": password, "password_again": password}
    ).encode()
    request = urllib.request.Request(link, data=form, headers={"Referer": link})
    answer = opener.open(request, timeout=30).read().decode()
    assert "joined" in answer.lower() or "welcome" in answer.lower(), answer[:500]


@pytest.fixture
def staff_key(db):
    platform = services.organization_create(name="Platform", slug="platform")
    staff, _ = services.user_get_or_create(username="root", email="root@example.com")
    staff.is_superuser = staff.is_staff = True
    staff.save()
    services.membership_set(organization=platform, user=staff, role="admin", actor=None)
    _, plaintext = services.api_key_create(
        organization=platform, user=staff, name="staff automation", actor=staff
    )
    return plaintext


def test_a_new_organization_is_set_up_through_the_api_alone_and_serves_a_chat(
    staff_key, fake_upstream, tmp_path
):
    # The deployment's model is priced (under a budget an unpriced one is refused); an
    # earlier transactional test may have emptied the seeded prices.
    Price.objects.get_or_create(
        model_pattern="gpt-4o-mini*",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        defaults={"input_per_mtok_micros": 150_000, "output_per_mtok_micros": 600_000},
    )
    log_path = tmp_path / "proxy.log"
    env = {"API_KEY_CACHE_SECONDS": "1", "ROUTE_CACHE_SECONDS": "0", "PRICE_CACHE_SECONDS": "0"}
    with live_server(env=env, log_path=log_path) as base_url:
        # Staff: the organization, and an invitation for its first admin.
        status, org = _call(
            base_url,
            "POST",
            "/api/organizations/",
            staff_key,
            {"name": "Team Nova", "slug": "team-nova", "admin_email": "nova-admin@example.com"},
        )
        assert status == 201, org
        _accept_invitation(base_url, log_path, "a long enough password 42")
        admin = Membership.objects.get(organization__slug="team-nova").user
        assert Membership.objects.get(user=admin).role == "admin"

        # Staff hand the admin a first key in the new organization.
        status, first = _call(
            base_url,
            "POST",
            "/api/keys/?organization=team-nova",
            staff_key,
            {"name": "admin bootstrap", "user": admin.username},
        )
        assert status == 201, first
        admin_key = first["key"]

        # The admin does the rest with that key.
        status, provider_key = _call(
            base_url,
            "POST",
            "/api/provider-keys/",
            admin_key,
            {
                "provider": "openai",
                "name": "team",
                "key": UPSTREAM_KEY,
                "base_url": fake_upstream.v1,
            },
        )
        assert status == 200, provider_key
        assert UPSTREAM_KEY not in json.dumps(provider_key)
        assert provider_key["last_four"] == UPSTREAM_KEY[-4:]
        status, route = _call(
            base_url,
            "POST",
            "/api/routes/",
            admin_key,
            {
                "public_name": "nova-chat",
                "deployments": [
                    {
                        "provider": "openai",
                        "upstream_model": "gpt-4o-mini",
                        "credential": provider_key["id"],
                    }
                ],
            },
        )
        assert status == 201, route
        status, budget = _call(
            base_url,
            "POST",
            "/api/budgets/",
            admin_key,
            {"scope": "organization", "monthly_limit_micros": 5_000_000},
        )
        assert status == 200, budget
        status, member_invite = _call(
            base_url, "POST", "/api/members/", admin_key, {"email": "dev@example.com"}
        )
        assert status == 202, member_invite
        status, app = _call(base_url, "POST", "/api/keys/", admin_key, {"name": "app"})
        assert status == 201, app

        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=app["key"], max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="nova-chat", messages=[{"role": "user", "content": "Hello from Nova"}]
        )
        assert raw.parse().choices[0].message.content
        event = wait_for_usage(raw.headers["x-request-id"])
        assert event.organization.slug == "team-nova" and event.model == "nova-chat"
        assert event.upstream_model == "gpt-4o-mini" and event.status_code == 200
        assert Budget.objects.filter(organization__slug="team-nova").count() == 1

        # Rotation with a grace period: both keys work, then only the new one.
        status, rotated = _call(
            base_url, "POST", f"/api/keys/{app['id']}/rotate/", admin_key, {"grace_seconds": 3}
        )
        assert status == 201, rotated
        assert rotated["replaces"]["status"] == "active"
        for key in (app["key"], rotated["key"]):
            assert _call(base_url, "GET", "/v1/models", key)[0] == 200
        time.sleep(3 + 1 + 0.5)  # the grace period, then the key cache's lifetime
        assert _call(base_url, "GET", "/v1/models", app["key"])[0] == 401
        assert _call(base_url, "GET", "/v1/models", rotated["key"])[0] == 200

    events = set(
        AuditLogEntry.objects.filter(organization__slug="team-nova").values_list("event", flat=True)
    )
    assert {
        "organization.created",
        "provider_key.created",
        "model_route.created",
        "deployment.created",
        "budget.set",
        "api_key.rotated",
    } <= events
