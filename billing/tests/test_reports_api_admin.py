"""GET /api/usage, the commands, the monthly report and the admin pages, tenant by tenant."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import ApiKey
from billing import usage
from billing.models import Budget, MonthlyReport
from billing.tasks import monthly_report_generate
from billing.tests.conftest import make_event

pytestmark = [pytest.mark.django_db, pytest.mark.urls("billing.tests.urls")]

TODAY = datetime.now(UTC).date()


@pytest.fixture
def traffic(org_a, org_b, alice, bob, charlie, alice_key, bob_key, charlie_key):
    keys = {key.user.username: key for key in ApiKey.objects.select_related("user")}
    for user, model, count in [(alice, "gpt-4o", 3), (bob, "gpt-4o-mini", 2)]:
        for _ in range(count):
            usage.usage_record(
                make_event(org_a, user, keys[user.username], model=model, upstream_model=model)
            )
    usage.usage_record(make_event(org_b, charlie, keys["charlie"], model="secret-model-b"))
    usage.usage_flush_run()


def test_an_admin_sees_the_organizations_usage_by_model(alice_client, traffic):
    response = alice_client.get("/api/usage", {"group_by": "model"})
    assert response.status_code == 200
    body = response.json()
    assert body["organization"] == "org-a"
    assert {row["label"]: row["requests"] for row in body["data"]} == {
        "gpt-4o": 3,
        "gpt-4o-mini": 2,
    }
    assert body["totals"]["cost_micros"] == 3 * 7500 + 2 * 450
    assert body["totals"]["cost_usd"] == "0.023400"


def test_another_organization_sees_nothing_of_org_a(charlie_client, traffic):
    for group_by in ("model", "user", "key", "day"):
        body = charlie_client.get("/api/usage", {"group_by": group_by}).json()
        text = json.dumps(body)
        assert "gpt-4o" not in text and "alice" not in text and "bob" not in text
    assert charlie_client.get("/api/usage", {"group_by": "model"}).json()["totals"]["requests"] == 1
    # Naming org_a does not help: the key's organization decides.
    assert charlie_client.get("/api/usage", {"organization": "org-a"}).status_code == 404


def test_a_basic_member_sees_only_their_own_usage(bob_client, traffic):
    body = bob_client.get("/api/usage", {"group_by": "user"}).json()
    assert [row["label"] for row in body["data"]] == ["bob"]
    assert body["totals"]["requests"] == 2


def test_usage_by_day_covers_every_day_of_the_range(alice_client, traffic):
    body = alice_client.get(
        "/api/usage", {"group_by": "day", "start": "2020-01-01", "end": "2020-01-07"}
    ).json()
    assert [row["key"] for row in body["data"]][0] == "2020-01-01"
    assert len(body["data"]) == 7 and body["totals"]["requests"] == 0


def test_usage_exports_csv(alice_client, traffic):
    response = alice_client.get("/api/usage", {"group_by": "user", "export": "csv"})
    assert response.status_code == 200
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("user,requests,")
    assert any(line.startswith("alice,3,") for line in lines)


def test_bad_queries_and_anonymous_callers_get_openai_errors(alice_client):
    response = alice_client.get("/api/usage", {"group_by": "planet"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "group_by"
    bad_range = alice_client.get("/api/usage", {"start": "2025-02-01", "end": "2025-01-01"})
    assert bad_range.status_code == 400
    assert Client().get("/api/usage").status_code == 401


def test_set_budget_command_sets_organization_member_and_key_budgets(org_a, alice, bob_key):
    out = StringIO()
    call_command(
        "set_budget", "--org", "org-a", "--monthly-usd", "100", "--soft-usd", "80", stdout=out
    )
    assert "$100.000000 a month, soft $80.000000" in out.getvalue()
    call_command(
        "set_budget", "--org", "org-a", "--user", "alice", "--monthly-usd", "5", stdout=out
    )
    prefix = bob_key[len("sk-syn-") :][:8]
    call_command(
        "set_budget", "--org", "org-a", "--key", prefix, "--monthly-usd", "1.5", stdout=out
    )
    budgets = {budget.scope: budget.monthly_limit_micros for budget in Budget.objects.all()}
    assert budgets == {"organization": 100_000_000, "member": 5_000_000, "key": 1_500_000}
    # Running it again changes the budget rather than adding one.
    call_command("set_budget", "--org", "org-a", "--monthly-usd", "200", stdout=out)
    assert Budget.objects.get(scope="organization").monthly_limit_micros == 200_000_000
    with pytest.raises(CommandError, match="soft limit cannot exceed"):
        call_command("set_budget", "--org", "org-a", "--monthly-usd", "1", "--soft-usd", "2")
    with pytest.raises(CommandError, match="no organization"):
        call_command("set_budget", "--org", "nope", "--monthly-usd", "1")


def test_usage_report_command_prints_csv_and_json(traffic):
    month = f"{TODAY:%Y-%m}"
    out = StringIO()
    call_command("usage_report", "--org", "org-a", "--month", month, "--format", "csv", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("day,user,api_key,model,requests")
    assert lines[-1].startswith("TOTAL,,,,5,")
    out = StringIO()
    call_command("usage_report", "--org", "org-a", "--month", month, "--format", "json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["summary"]["requests"] == 5
    assert "secret-model-b" not in out.getvalue()
    with pytest.raises(CommandError):
        call_command("usage_report", "--org", "org-a", "--month", "May")


def test_the_monthly_report_task_is_idempotent_and_downloadable(org_a, alice, traffic):
    month = f"{TODAY:%Y-%m}"
    first = monthly_report_generate(org_a.pk, month)
    assert monthly_report_generate(org_a.pk, month) == first
    report = MonthlyReport.objects.get()
    assert report.summary["requests"] == 5
    assert report.csv_content.splitlines()[-1].startswith("TOTAL")

    alice.is_staff = True
    alice.save()
    client = Client()
    client.force_login(alice)
    response = client.get(f"/admin/billing/monthlyreport/{report.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Disposition"].endswith(f'{report.filename}"')


def test_an_organization_admin_cannot_download_another_organizations_report(
    org_a, charlie, traffic
):
    report_id = monthly_report_generate(org_a.pk, f"{TODAY:%Y-%m}")
    charlie.is_staff = True
    charlie.save()
    client = Client()
    client.force_login(charlie)
    response = client.get(f"/admin/billing/monthlyreport/{report_id}/download/")
    assert response.status_code == 404


def test_the_dashboard_draws_charts_of_the_organizations_usage(alice, traffic):
    alice.is_staff = True
    alice.save()
    client = Client()
    client.force_login(alice)
    response = client.get("/admin/billing/dailyusagerollup/dashboard/", {"days": 7})
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<svg") >= 7
    assert "gpt-4o-mini" in page
    assert "secret-model-b" not in page
    csv_response = client.get("/admin/billing/dailyusagerollup/dashboard/", {"export": "model"})
    assert csv_response["Content-Type"].startswith("text/csv")
    assert (
        client.get(
            "/admin/billing/dailyusagerollup/dashboard/", {"organization": "org-b"}
        ).status_code
        == 404
    )


def test_platform_staff_see_every_organization_on_the_dashboard(db, traffic, django_user_model):
    staff = django_user_model.objects.create_superuser("root", "root@example.com", "pw-12345678")
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/billing/dailyusagerollup/dashboard/").content.decode()
    assert "gpt-4o-mini" in page and "secret-model-b" in page


def test_billing_admin_pages_render(alice, traffic):
    alice.is_staff = True
    alice.save()
    client = Client()
    client.force_login(alice)
    for name in (
        "price",
        "budget",
        "budgetalert",
        "usageevent",
        "dailyusagerollup",
        "monthlyreport",
    ):
        assert client.get(f"/admin/billing/{name}/").status_code == 200, name
    assert client.get("/admin/billing/budget/add/").status_code == 200
    events = client.get("/admin/billing/usageevent/").content.decode()
    assert "secret-model-b" not in events
