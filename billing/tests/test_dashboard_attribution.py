"""The usage dashboard's spend per end user and per tag: the chosen organization's only."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from accounts.models import ApiKey
from billing import usage
from billing.tests.conftest import make_event

DASHBOARD = "/admin/billing/dailyusagerollup/dashboard/"


@pytest.fixture
def attributed_traffic(org_a, org_b, alice, charlie, alice_key, charlie_key):
    keys = {key.user.username: key for key in ApiKey.objects.select_related("user")}
    for end_user, tags, count in [
        ("customer-ada", ["checkout", "beta"], 3),
        ("customer-bob", ["checkout"], 1),
        ("", [], 2),
    ]:
        for _ in range(count):
            usage.usage_record(
                make_event(org_a, alice, keys["alice"], end_user=end_user, tags=tags)
            )
    usage.usage_record(
        make_event(org_b, charlie, keys["charlie"], end_user="rival-customer", tags=["secret-tag"])
    )
    usage.usage_flush_run()


def _admin_client(user) -> Client:
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_shows_spend_by_end_user_and_tag_of_the_admins_organization(
    alice, attributed_traffic
):
    response = _admin_client(alice).get(DASHBOARD, {"days": 7})
    assert response.status_code == 200
    by_user = {row["label"]: row for row in response.context["attributed"]["end_user"]}
    by_tag = {row["label"]: row for row in response.context["attributed"]["tag"]}
    assert {label: row["requests"] for label, row in by_user.items()} == {
        "customer-ada": 3,
        "customer-bob": 1,
        "-": 2,
    }
    # A request with two tags counts in each tag's row.
    assert {label: row["requests"] for label, row in by_tag.items()} == {
        "checkout": 4,
        "beta": 3,
        "-": 2,
    }
    assert by_user["customer-ada"]["cost_micros"] == 3 * by_user["customer-bob"]["cost_micros"] > 0
    page = response.content.decode()
    assert 'id="spend-by-end-user"' in page and 'id="spend-by-tag"' in page
    assert "customer-ada" in page and "checkout" in page
    assert "rival-customer" not in page and "secret-tag" not in page


def test_the_end_user_and_tag_csv_exports_are_the_organizations(alice, attributed_traffic):
    client = _admin_client(alice)
    for export, expected in (("end_user", "customer-ada"), ("tag", "checkout")):
        response = client.get(DASHBOARD, {"days": 7, "export": export})
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows[0][0] == export
        labels = [row[0] for row in rows[1:]]
        assert expected in labels
        assert "rival-customer" not in labels and "secret-tag" not in labels


def test_an_organization_admin_cannot_see_another_organizations_end_users(
    charlie, attributed_traffic
):
    client = _admin_client(charlie)
    assert client.get(DASHBOARD, {"organization": "org-a"}).status_code == 404
    page = client.get(DASHBOARD).content.decode()
    assert "rival-customer" in page and "customer-ada" not in page and "checkout" not in page


def test_platform_staff_see_attribution_only_for_a_chosen_organization(
    db, attributed_traffic, django_user_model
):
    staff = django_user_model.objects.create_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    response = client.get(DASHBOARD)
    assert response.context["attributed"] == {}
    assert "Choose an organization" in response.content.decode()
    chosen = client.get(DASHBOARD, {"organization": "org-b"})
    assert [row["label"] for row in chosen.context["attributed"]["end_user"]] == ["rival-customer"]
