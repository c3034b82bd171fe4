"""Registered tools on a live server: called through ``POST /v1/tools/call`` and through an
MCP client session (the official SDK's streamable HTTP client), refused on loopback when the
platform does not allow it, invisible to another organization, attached to a chat by a
keyword rule, and never showing their secret."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from accounts import services as account_services
from common.testing import live_server
from proxy.models import Deployment, ModelRoute
from proxy.tests.test_openai_sdk_e2e import wait_for_usage
from tools import services
from tools.tests.tool_server import ToolServer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

SECRET = "tool-secret-value-7f3a9c"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
def tool_server():
    with ToolServer() as server:
        yield server


@pytest.fixture(scope="module", params=["true", "false"], ids=["fast-paths", "stock-path"])
def server_url(request, django_db_setup, tmp_path_factory):
    """A proxy allowed to reach loopback (as a platform would allow-list an internal host)."""
    env = {
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "TOOLS_CACHE_SECONDS": "0",
        "ROUTE_CACHE_SECONDS": "0",
        "SYNTHLANG_FAST_PATHS": request.param,
        "TOOLS_MAX_RESPONSE_BYTES": str(1024 * 1024),
    }
    log_path = tmp_path_factory.mktemp("tools") / "proxy.log"
    with live_server(env=env, log_path=log_path) as url:
        yield url
    # The server's log too: no line may carry the tool's secret.
    assert SECRET not in log_path.read_text(errors="replace")


@pytest.fixture
def weather(settings, org_a, tool_server):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    tool_server.recorder.tool_requests.clear()
    return services.tool_create(
        organization=org_a,
        name="get_weather",
        description="The weather in a city.",
        parameters=WEATHER_SCHEMA,
        url=f"{tool_server.url}/weather",
        secret=SECRET,
    )


def _call(server_url: str, key: str, payload: dict) -> httpx.Response:
    return httpx.post(
        f"{server_url}/v1/tools/call",
        json=payload,
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_a_tool_is_listed_and_called_with_its_secret_through_v1_tools(
    server_url, alice_key, weather, tool_server
):
    listed = httpx.get(
        f"{server_url}/v1/tools", headers={"authorization": f"Bearer {alice_key}"}, timeout=30
    )
    assert listed.status_code == 200
    assert listed.json()["data"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER_SCHEMA,
            },
        }
    ]
    answer = _call(server_url, alice_key, {"name": "get_weather", "arguments": {"city": "Oslo"}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"] == {"city": "Oslo", "forecast": "sunny", "celsius": 21}
    assert SECRET not in answer.text and SECRET not in listed.text
    (sent,) = tool_server.recorder.tool_requests
    assert sent["body"] == {"city": "Oslo"}
    assert sent["authorization"] == f"Bearer {SECRET}"
    # OpenAI's tool-call arguments are a JSON string: accepted as well.
    again = _call(server_url, alice_key, {"name": "get_weather", "arguments": '{"city": "Rome"}'})
    assert again.json()["content"]["city"] == "Rome"


def test_a_tool_call_is_a_usage_event_of_its_own_endpoint(server_url, alice_key, weather):
    answer = _call(server_url, alice_key, {"name": "get_weather", "arguments": {"city": "Oslo"}})
    assert answer.status_code == 200
    event = wait_for_usage(answer.headers["x-request-id"])
    assert event.endpoint == "tools.call"
    assert event.model == "tool:get_weather"
    assert event.organization_id == weather.organization_id
    assert event.cost_micros == 0 and event.status_code == 200


def test_arguments_that_break_the_schema_are_a_400(server_url, alice_key, weather, tool_server):
    answer = _call(server_url, alice_key, {"name": "get_weather", "arguments": {"town": "Oslo"}})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "arguments"
    assert tool_server.recorder.tool_requests == []


def test_another_organizations_tool_is_invisible(server_url, charlie_key, weather, tool_server):
    listed = httpx.get(
        f"{server_url}/v1/tools", headers={"authorization": f"Bearer {charlie_key}"}, timeout=30
    )
    assert listed.status_code == 200 and listed.json()["data"] == []
    answer = _call(server_url, charlie_key, {"name": "get_weather", "arguments": {"city": "x"}})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
    assert tool_server.recorder.tool_requests == []


def test_a_tool_error_is_a_502_without_the_secret(
    server_url, alice_key, settings, org_a, tool_server
):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    for name, path in (("leaky", "/echo-secret"), ("leaky_ok", "/echo-secret-ok")):
        services.tool_create(
            organization=org_a, name=name, url=tool_server.url + path, secret=SECRET
        )
    failed = _call(server_url, alice_key, {"name": "leaky", "arguments": {}})
    assert failed.status_code == 502
    assert "HTTP 500" in failed.json()["error"]["message"]
    assert SECRET not in failed.text
    succeeded = _call(server_url, alice_key, {"name": "leaky_ok", "arguments": {}})
    assert succeeded.status_code == 200
    assert SECRET not in succeeded.text and "[REDACTED]" in succeeded.text


def test_a_slow_tool_times_out_cleanly(server_url, alice_key, settings, org_a, tool_server):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    services.tool_create(
        organization=org_a, name="slow", url=f"{tool_server.url}/slow", timeout_seconds=0.5
    )
    answer = _call(server_url, alice_key, {"name": "slow", "arguments": {}})
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "request_timeout"


def test_a_redirect_is_not_followed_and_a_huge_answer_is_refused(
    server_url, alice_key, settings, org_a, tool_server
):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    services.tool_create(organization=org_a, name="moved", url=f"{tool_server.url}/redirect")
    services.tool_create(organization=org_a, name="huge", url=f"{tool_server.url}/huge")
    moved = _call(server_url, alice_key, {"name": "moved", "arguments": {}})
    assert moved.status_code == 502 and "HTTP 302" in moved.json()["error"]["message"]
    huge = _call(server_url, alice_key, {"name": "huge", "arguments": {}})
    assert huge.status_code == 502 and "more than" in huge.json()["error"]["message"]


def test_a_keyword_rule_attaches_the_tool_to_a_chat(
    server_url, alice_key, weather, settings, org_a, tool_server
):
    credential = account_services.provider_credential_set(
        organization=org_a,
        provider="openai",
        key="sk-recorder-upstream-0001",
        base_url=f"{tool_server.url}/v1",
        name="recorder",
        actor=None,
    )
    route = ModelRoute.objects.create(organization=org_a, public_name="recorded-model")
    Deployment.objects.create(
        route=route, provider="openai", credential=credential, upstream_model="up-model", priority=0
    )
    services.tool_attach_rule_create(tool=weather, pattern="weather")
    tool_server.recorder.chat_bodies.clear()
    client = openai.OpenAI(base_url=f"{server_url}/v1", api_key=alice_key, max_retries=0)

    client.chat.completions.create(
        model="recorded-model",
        messages=[{"role": "user", "content": "What is the Weather like in Oslo?"}],
        extra_headers={"x-synthlang-cache": "off", "x-synthlang-compression": "off"},
    )
    client.chat.completions.create(
        model="recorded-model",
        messages=[{"role": "user", "content": "What is the weather like in Oslo?"}],
        tool_choice="none",
        tools=[
            {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}
        ],
        extra_headers={"x-synthlang-cache": "off", "x-synthlang-compression": "off"},
    )
    client.chat.completions.create(
        model="recorded-model",
        messages=[{"role": "user", "content": "Tell me about weatherproof jackets."}],
        extra_headers={"x-synthlang-cache": "off", "x-synthlang-compression": "off"},
    )
    attached, refused, unmatched = tool_server.recorder.chat_bodies
    assert [t["function"]["name"] for t in attached["tools"]] == ["get_weather"]
    assert attached["tools"][0]["function"]["parameters"] == WEATHER_SCHEMA
    assert [t["function"]["name"] for t in refused["tools"]] == ["noop"]
    assert "tools" not in unmatched  # a keyword matches whole words only


async def _mcp_session(server_url: str, key: str):
    http_client = create_mcp_http_client(headers={"authorization": f"Bearer {key}"})
    async with (
        http_client,
        streamable_http_client(f"{server_url}/mcp", http_client=http_client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        result = None
        if tools.tools:
            result = await session.call_tool("get_weather", {"city": "Lima"})
        missing = await session.call_tool("not_a_tool", {})
        return tools, result, missing


def test_an_mcp_client_session_lists_and_calls_the_tools(
    server_url, alice_key, charlie_key, weather, tool_server
):
    tools, result, missing = asyncio.run(_mcp_session(server_url, alice_key))
    assert [tool.name for tool in tools.tools] == ["get_weather"]
    assert tools.tools[0].input_schema == WEATHER_SCHEMA
    assert not result.is_error
    assert result.structured_content == {"city": "Lima", "forecast": "sunny", "celsius": 21}
    assert '"Lima"' in result.content[0].text
    assert missing.is_error
    (sent,) = tool_server.recorder.tool_requests
    assert sent["authorization"] == f"Bearer {SECRET}" and sent["body"] == {"city": "Lima"}

    # Another organization's key sees no tool and cannot call this one.
    tools_b, _, missing_b = asyncio.run(_mcp_session(server_url, charlie_key))
    assert tools_b.tools == []
    assert missing_b.is_error
    assert len(tool_server.recorder.tool_requests) == 1


def test_mcp_refuses_a_missing_or_wrong_key(server_url):
    for headers in ({}, {"authorization": "Bearer sk-syn-not-a-key"}):
        answer = httpx.post(
            f"{server_url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"accept": "application/json, text/event-stream", **headers},
            timeout=30,
        )
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_api_key"
