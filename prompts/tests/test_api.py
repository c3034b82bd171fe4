"""The management API: admins write, members read, outsiders get 404; every write audited."""

from __future__ import annotations

import pytest

from accounts.models import AuditLogEntry
from prompts.models import PromptVersion
from prompts.tests.conftest import GREETING_V1

pytestmark = pytest.mark.django_db

VERSION = {"messages": GREETING_V1, "parameters": {"max_tokens": 50}, "commit_message": "v1"}


def test_an_admin_creates_a_prompt_with_a_first_version_and_a_label(alice_client, alice):
    response = alice_client.post(
        "/api/prompts/",
        {"name": "support", "version": {**VERSION, "labels": ["production"]}},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "support"
    assert body["latest_version"] == 1
    assert body["labels"] == {"production": 1}
    events = set(AuditLogEntry.objects.filter(actor=alice).values_list("event", flat=True))
    assert {"prompt.created", "prompt.version_created", "prompt.label_set"} <= events


def test_versions_are_numbered_in_order_and_list_their_variables(alice_client, greeting):
    response = alice_client.post("/api/prompts/greeting/versions/", VERSION, format="json")

    assert response.status_code == 201
    assert response.json()["version"] == 3
    assert response.json()["variables"] == ["tone", "name"]
    listed = alice_client.get("/api/prompts/greeting/versions/").json()["data"]
    assert [version["version"] for version in listed] == [3, 2, 1]
    assert listed[1]["labels"] == ["staging"]


def test_a_prompt_is_found_by_its_id_as_well_as_its_name(alice_client, greeting):
    response = alice_client.get(f"/api/prompts/{greeting.pk}/")

    assert response.status_code == 200
    assert response.json()["labels"] == {"production": 1, "staging": 2}


def test_a_member_reads_but_cannot_write(bob_client, greeting):
    assert bob_client.get("/api/prompts/").json()["data"][0]["name"] == "greeting"
    assert bob_client.get("/api/prompts/greeting/versions/2/").status_code == 200

    assert bob_client.post("/api/prompts/", {"name": "x"}, format="json").status_code == 403
    refused = bob_client.post("/api/prompts/greeting/versions/", VERSION, format="json")
    assert refused.status_code == 403
    moved = bob_client.put(
        "/api/prompts/greeting/labels/production/", {"version": 2}, format="json"
    )
    assert moved.status_code == 403
    assert PromptVersion.objects.filter(prompt=greeting).count() == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/prompts/greeting/"),
        ("get", "/api/prompts/{id}/"),
        ("get", "/api/prompts/greeting/versions/"),
        ("get", "/api/prompts/greeting/versions/1/"),
        ("get", "/api/prompts/greeting/diff/?from=1&to=2"),
        ("get", "/api/prompts/greeting/usage/"),
        ("delete", "/api/prompts/greeting/"),
        ("put", "/api/prompts/greeting/labels/production/"),
        ("post", "/api/prompts/greeting/versions/"),
    ],
)
def test_another_organizations_prompt_is_a_404(charlie_client, greeting, method, path):
    response = getattr(charlie_client, method)(
        path.format(id=greeting.pk), {"version": 1, **VERSION}, format="json"
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert charlie_client.get("/api/prompts/").json()["data"] == []


def test_moving_a_label_points_it_at_another_version_and_is_audited(alice_client, greeting):
    response = alice_client.put(
        "/api/prompts/greeting/labels/production/", {"version": 2}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["labels"] == {"production": 2, "staging": 2}
    entry = AuditLogEntry.objects.filter(event="prompt.label_set").first()
    assert entry.details == {"label": "production", "version": 2, "previous_version": 1}


def test_a_label_cannot_point_at_a_version_that_does_not_exist(alice_client, greeting):
    response = alice_client.put(
        "/api/prompts/greeting/labels/production/", {"version": 9}, format="json"
    )

    assert response.status_code == 404
    assert response.json()["error"]["param"] == "version"


def test_removing_a_label(alice_client, greeting):
    assert alice_client.delete("/api/prompts/greeting/labels/staging/").status_code == 204

    assert alice_client.get("/api/prompts/greeting/").json()["labels"] == {"production": 1}


def test_the_diff_endpoint_returns_a_unified_diff(bob_client, greeting):
    response = bob_client.get("/api/prompts/greeting/diff/?from=1&to=2")

    assert response.status_code == 200
    text = response.json()["diff"]
    assert "--- greeting v1\n+++ greeting v2" in text
    assert "-Greet {{name}} warmly" in text
    assert "+Say hi to {{name}} from the v2 prompt" in text
    assert "+model: gpt-4o-mini" in text


def test_the_diff_needs_two_version_numbers(bob_client, greeting):
    response = bob_client.get("/api/prompts/greeting/diff/?from=1")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "to"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "123"}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "greeting"}, "name"),
        ({"name": "ok", "version": {"messages": []}}, "messages"),
        ({"name": "ok", "version": {"messages": GREETING_V1, "parameters": {"x": 1}}}, None),
    ],
)
def test_invalid_prompts_are_refused_with_the_field_named(alice_client, greeting, body, param):
    response = alice_client.post("/api/prompts/", body, format="json")

    assert response.status_code == 400
    if param:
        assert response.json()["error"]["param"] == param


def test_a_refused_first_version_leaves_no_prompt_behind(alice_client, greeting):
    alice_client.post("/api/prompts/", {"name": "ok", "version": {"messages": []}}, format="json")

    assert alice_client.get("/api/prompts/ok/").status_code == 404


def test_deleting_a_prompt_removes_its_versions_and_labels(alice_client, greeting):
    assert alice_client.delete("/api/prompts/greeting/").status_code == 204

    assert PromptVersion.objects.count() == 0
    assert AuditLogEntry.objects.filter(event="prompt.deleted").exists()


def test_the_schema_documents_the_prompt_endpoints(alice_client):
    schema = alice_client.get("/api/schema/?format=json").json()

    assert "/api/prompts/{ref}/diff/" in schema["paths"]
    assert "/api/prompts/{ref}/labels/{label}/" in schema["paths"]
