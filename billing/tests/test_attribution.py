"""Spend per end user and per tag: GET /api/usage's grouping and filters, and the CSV."""

from __future__ import annotations

import csv
import io

import pytest

from accounts.models import ApiKey
from billing import usage
from billing.models import Price, UsageEvent
from billing.tests.conftest import make_event

pytestmark = [pytest.mark.django_db, pytest.mark.urls("billing.tests.urls")]


@pytest.fixture
def attributed_traffic(org_a, org_b, alice, bob, charlie, alice_key, bob_key, charlie_key):
    from datetime import UTC, datetime

    Price.objects.create(
        model_pattern="gpt-4o",
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        input_per_mtok_micros=2_500_000,
        output_per_mtok_micros=10_000_000,
    )
    keys = {key.user.username: key for key in ApiKey.objects.select_related("user")}
    # 1000 prompt + 500 completion tokens of gpt-4o: 2,500 + 5,000 = 7,500 micro-dollars each.
    for user, end_user, tags, count in [
        (alice, "customer-1", ["team-search", "feature:summary"], 2),
        (alice, "customer-2", ["team-search"], 1),
        (bob, "customer-1", [], 1),
        (bob, "", ["feature:summary"], 1),
    ]:
        for _ in range(count):
            usage.usage_record(
                make_event(
                    org_a,
                    user,
                    keys[user.username],
                    end_user=end_user,
                    tags=tags,
                    metadata={"feature": "summary"} if tags else {},
                )
            )
    usage.usage_record(
        make_event(org_b, charlie, keys["charlie"], end_user="customer-1", tags=["team-search"])
    )
    usage.usage_flush_run()


def _rows(body) -> dict:
    return {row["label"]: (row["requests"], row["cost_micros"]) for row in body["data"]}


def test_the_usage_event_keeps_the_end_user_tags_and_metadata(attributed_traffic, org_a):
    event = UsageEvent.objects.filter(organization=org_a, end_user="customer-2").get()
    assert event.tags == ",team-search,"
    assert event.metadata == {"feature": "summary"}


def test_spend_grouped_by_end_user(alice_client, attributed_traffic):
    body = alice_client.get("/api/usage", {"group_by": "end_user"}).json()
    assert _rows(body) == {"customer-1": (3, 22_500), "customer-2": (1, 7_500), "-": (1, 7_500)}
    assert body["totals"]["requests"] == 5 and body["totals"]["cost_micros"] == 37_500
    assert body["data"][0]["cost_usd"] == "0.022500"


def test_spend_grouped_by_tag_counts_a_request_in_each_of_its_tags(
    alice_client, attributed_traffic
):
    body = alice_client.get("/api/usage", {"group_by": "tag"}).json()
    assert _rows(body) == {
        "team-search": (3, 22_500),
        "feature:summary": (3, 22_500),
        "-": (1, 7_500),
    }
    assert body["totals"]["requests"] == 5  # each request once


def test_filters_by_end_user_and_tag(alice_client, attributed_traffic):
    by_tag = alice_client.get(
        "/api/usage", {"group_by": "end_user", "tag": "feature:summary"}
    ).json()
    assert _rows(by_tag) == {"customer-1": (2, 15_000), "-": (1, 7_500)}
    assert by_tag["totals"]["requests"] == 3
    one_user = alice_client.get("/api/usage", {"group_by": "tag", "end_user": "customer-1"}).json()
    assert _rows(one_user) == {
        "team-search": (2, 15_000),
        "feature:summary": (2, 15_000),
        "-": (1, 7_500),
    }


def test_a_tag_filter_matches_whole_tags_only(alice_client, attributed_traffic):
    body = alice_client.get("/api/usage", {"group_by": "tag", "tag": "team"}).json()
    assert body["data"] == [] and body["totals"]["requests"] == 0


def test_a_basic_member_sees_only_their_own_attributed_spend(bob_client, attributed_traffic):
    body = bob_client.get("/api/usage", {"group_by": "end_user"}).json()
    assert _rows(body) == {"customer-1": (1, 7_500), "-": (1, 7_500)}


def test_another_organization_sees_only_its_own_end_users(charlie_client, attributed_traffic):
    body = charlie_client.get("/api/usage", {"group_by": "end_user"}).json()
    assert _rows(body) == {"customer-1": (1, 7_500)}


def test_spend_per_end_user_exports_csv(alice_client, attributed_traffic):
    response = alice_client.get("/api/usage", {"group_by": "end_user", "export": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {row["end_user"]: row["cost_usd"] for row in rows} == {
        "customer-1": "0.022500",
        "customer-2": "0.007500",
        "-": "0.007500",
    }


def test_bad_attribution_queries_get_openai_errors(alice_client):
    bad_tag = alice_client.get("/api/usage", {"group_by": "tag", "tag": "no spaces please"})
    assert bad_tag.status_code == 400 and bad_tag.json()["error"]["param"] == "tag"
    rollup_group = alice_client.get("/api/usage", {"group_by": "model", "tag": "team-search"})
    assert rollup_group.status_code == 400
    assert rollup_group.json()["error"]["param"] == "group_by"
