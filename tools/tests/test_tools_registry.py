"""The registry's rules without a server: what may be saved, who may write, what a call to
a refused address does, and the tools stage's hooks called directly."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from accounts.models import AuditLogEntry
from accounts.selectors import principal_for_key
from common.errors import InvalidRequest, PermissionDenied
from tools import services
from tools.invoke import tool_call
from tools.matching import last_user_text, matching_tool_names, rule_matches
from tools.selectors import RuleSpec, organization_tools_forget
from tools.stage import ToolsStage
from tools.tests.tool_server import ToolServer

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}}


@pytest.fixture(autouse=True)
def _no_snapshots():
    organization_tools_forget()
    yield
    organization_tools_forget()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/tool",
        "https://127.0.0.1/tool",
        "https://[::1]/tool",
        "https://localhost/tool",
        "https://169.254.169.254/latest",
        "https://10.0.0.5/tool",
        "https://example.com/tool#x",
    ],
)
def test_a_tool_url_on_an_internal_address_is_refused_at_save(org_a, settings, url):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(InvalidRequest) as refused:
        services.tool_create(organization=org_a, name="t", url=url)
    assert refused.value.param == "url"


@pytest.mark.django_db
def test_plain_http_is_refused_unless_the_platform_allows_it(org_a, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(InvalidRequest, match="https"):
        services.tool_create(organization=org_a, name="t", url="http://93.184.215.14/tool")
    settings.OUTBOUND_ALLOW_HTTP = True
    assert services.tool_create(organization=org_a, name="t", url="http://93.184.215.14/tool")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"type": "object", "properties": {"q": {"type": "strin"}}}, "not a valid JSON Schema"),
        ({"type": "string"}, '"type": "object"'),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_parameters_must_be_an_object_json_schema(org_a, parameters, message):
    with pytest.raises(InvalidRequest, match=message):
        services.tool_create(
            organization=org_a, name="t", url="https://93.184.215.14/t", parameters=parameters
        )


@pytest.mark.django_db
def test_rule_patterns_are_bounded_and_must_compile(org_a):
    tool = services.tool_create(organization=org_a, name="t", url="https://93.184.215.14/t")
    with pytest.raises(InvalidRequest, match="at most 200"):
        services.tool_attach_rule_create(tool=tool, pattern="a" * 201)
    with pytest.raises(InvalidRequest, match="regular expression"):
        services.tool_attach_rule_create(tool=tool, kind="regex", pattern="(unclosed")
    rule = services.tool_attach_rule_create(tool=tool, kind="regex", pattern=r"order\s+#?\d+")
    assert rule.organization_id == org_a.pk


@pytest.mark.django_db(transaction=True)
def test_a_loopback_tool_is_refused_at_call_time_once_the_platform_stops_allowing_it(
    org_a, alice_key, settings
):
    with ToolServer() as server:
        settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
        services.tool_create(organization=org_a, name="local", url=f"{server.url}/weather")
        settings.OUTBOUND_ALLOWED_HOSTS = []
        principal = principal_for_key(alice_key)
        with pytest.raises(PermissionDenied, match="not allowed"):
            asyncio.run(tool_call(principal=principal, name="local", arguments={}))
        assert server.recorder.tool_requests == []


def test_the_last_user_message_is_what_rules_read():
    messages = [
        {"role": "user", "content": "first about weather"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "now about"}, {"type": "text", "text": "orders"}],
        },
    ]
    text = last_user_text(messages)
    assert text == "now about orders"
    rules = [RuleSpec("weather", "keyword", "weather"), RuleSpec("orders", "regex", r"\borders?\b")]
    assert matching_tool_names(rules, text) == ["orders"]
    assert last_user_text([{"role": "user", "content": "x" * 10_000}]) == "x" * 4000


def _call(principal, body):
    return SimpleNamespace(principal=principal, body=body, annotations={}, stage_state={})


@pytest.mark.django_db(transaction=True)
def test_the_stage_attaches_matching_tools_and_names_them(org_a, alice_key):
    tool = services.tool_create(
        organization=org_a, name="lookup", url="https://93.184.215.14/t", parameters=SCHEMA
    )
    services.tool_attach_rule_create(tool=tool, pattern="Order")
    principal = principal_for_key(alice_key)
    stage = ToolsStage()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Where is my order?"}]}
    call = _call(principal, body)
    assert asyncio.run(stage.on_request(call)) is None
    assert call.body is not body and "tools" not in body  # the client's dict is untouched
    assert call.body["tools"] == [
        {
            "type": "function",
            "function": {"name": "lookup", "description": "", "parameters": SCHEMA},
        }
    ]
    assert call.annotations["tools"] == {"attached": "lookup", "count": 1}

    none = _call(principal, {**body, "tool_choice": "none"})
    asyncio.run(stage.on_request(none))
    assert "tools" not in none.body and none.annotations == {}

    # A tool the client sent under the same name is left as the client wrote it.
    own = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    mine = _call(principal, {**body, "tools": [own]})
    asyncio.run(stage.on_request(mine))
    assert mine.body["tools"] == [own] and mine.annotations == {}


@pytest.mark.django_db(transaction=True)
def test_the_stage_attaches_nothing_from_another_organization(org_a, charlie_key):
    tool = services.tool_create(organization=org_a, name="lookup", url="https://93.184.215.14/t")
    services.tool_attach_rule_create(tool=tool, pattern="order")
    call = _call(
        principal_for_key(charlie_key),
        {"messages": [{"role": "user", "content": "Where is my order?"}]},
    )
    asyncio.run(ToolsStage().on_request(call))
    assert "tools" not in call.body


# --- Management API ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_creates_a_tool_whose_secret_is_never_returned(alice_client, org_a):
    created = alice_client.post(
        "/api/tools/",
        {
            "name": "lookup",
            "url": "https://93.184.215.14/lookup",
            "parameters": SCHEMA,
            "secret": "super-secret-token-1234",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["has_secret"] is True
    assert "super-secret-token-1234" not in created.content.decode()
    tool_id = created.json()["id"]
    rule = alice_client.post(f"/api/tools/{tool_id}/rules/", {"pattern": "order"}, format="json")
    assert rule.status_code == 201
    detail = alice_client.get(f"/api/tools/{tool_id}/")
    assert detail.json()["rules"][0]["pattern"] == "order"
    assert "super-secret-token-1234" not in detail.content.decode()
    events = set(AuditLogEntry.objects.filter(organization=org_a).values_list("event", flat=True))
    assert {"tool.created", "tool.rule_created"} <= events
    entry = AuditLogEntry.objects.get(event="tool.created")
    assert "super-secret-token-1234" not in str(entry.details)
    patched = alice_client.patch(f"/api/tools/{tool_id}/", {"enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["enabled"] is False


@pytest.mark.django_db
def test_the_api_refuses_a_loopback_url(alice_client, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    refused = alice_client.post(
        "/api/tools/", {"name": "local", "url": "http://127.0.0.1:8000/x"}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "url"


@pytest.mark.django_db
def test_a_member_reads_but_cannot_write_and_an_outsider_sees_nothing(
    alice_client, bob_client, charlie_client, org_a
):
    tool = services.tool_create(organization=org_a, name="lookup", url="https://93.184.215.14/t")
    assert bob_client.get("/api/tools/").json()["data"][0]["name"] == "lookup"
    assert (
        bob_client.post(
            "/api/tools/", {"name": "x", "url": "https://93.184.215.14/x"}, format="json"
        ).status_code
        == 403
    )
    assert bob_client.delete(f"/api/tools/{tool.pk}/").status_code == 403
    assert charlie_client.get("/api/tools/").json()["data"] == []
    assert charlie_client.get(f"/api/tools/{tool.pk}/").status_code == 404
    assert (
        charlie_client.patch(
            f"/api/tools/{tool.pk}/", {"enabled": False}, format="json"
        ).status_code
        == 404
    )
    assert charlie_client.delete(f"/api/tools/{tool.pk}/").status_code == 404
    assert alice_client.delete(f"/api/tools/{tool.pk}/").status_code == 204


@pytest.mark.django_db
def test_the_schema_documents_the_tools_api(alice_client):
    schema = alice_client.get("/api/schema/?format=json").json()
    assert "/api/tools/" in schema["paths"] and "/api/tools/{tool_id}/rules/" in schema["paths"]


@pytest.mark.django_db
def test_the_admin_shows_an_organization_admin_only_their_tools(client, alice, org_a, org_b):
    services.tool_create(organization=org_a, name="mine", url="https://93.184.215.14/a")
    services.tool_create(organization=org_b, name="theirs", url="https://93.184.215.14/b")
    client.force_login(alice)
    page = client.get("/admin/tools/tool/")
    assert page.status_code == 200
    assert "mine" in page.content.decode() and "theirs" not in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_name_that_resolves_to_loopback_at_call_time_is_refused_at_connect(
    org_a, alice_key, settings, monkeypatch
):
    """DNS rebinding: public when saved, loopback when called; the dialled address decides."""
    import socket

    real_getaddrinfo = socket.getaddrinfo
    answers = {"rebind.example.test": "93.184.215.14"}

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return real_getaddrinfo(answers[host], port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with ToolServer() as server:
        port = server.url.rsplit(":", 1)[1]
        services.tool_create(
            organization=org_a, name="rebound", url=f"https://rebind.example.test:{port}/weather"
        )
        answers["rebind.example.test"] = "127.0.0.1"
        with pytest.raises(PermissionDenied, match="outbound policy"):
            asyncio.run(
                tool_call(principal=principal_for_key(alice_key), name="rebound", arguments={})
            )
        assert server.recorder.tool_requests == []


def test_a_catastrophic_attach_pattern_gives_up_instead_of_holding_the_loop():
    """Nested repetition on a long near-miss would run for minutes with the standard
    library's engine; the search has a timeout, and a rule that times out attaches nothing."""
    assert rule_matches("regex", r"^(a+)+$", "a" * 4000 + "!") is False
    assert rule_matches("regex", r"^(a+)+$", "aaaa") is True
