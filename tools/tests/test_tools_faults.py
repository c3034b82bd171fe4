"""With the database down, the tool endpoints answer 503 in OpenAI's format (never a 500),
a snapshot already read keeps serving, and the chat stage lets the request go on."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from django.db import OperationalError
from django.test import AsyncClient

from accounts.selectors import principal_for_key
from tools import selectors, services
from tools.stage import ToolsStage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_snapshots():
    selectors.organization_tools_forget()
    yield
    selectors.organization_tools_forget()


def _database_down(monkeypatch):
    async def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "run_in_db_thread", refuse)


def _get(path: str, key: str):
    async def request():
        return await AsyncClient().get(path, headers={"Authorization": f"Bearer {key}"})

    return async_to_sync(request)()


def _post(path: str, key: str, body: dict):
    async def request():
        return await AsyncClient().post(
            path,
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        )

    return async_to_sync(request)()


def test_the_tool_endpoints_answer_503_when_the_database_is_down(alice_key, monkeypatch):
    principal_for_key(alice_key)  # the key is cached, as on a running server
    _database_down(monkeypatch)
    listed = _get("/v1/tools", alice_key)
    called = _post("/v1/tools/call", alice_key, {"name": "any", "arguments": {}})
    for response in (listed, called):
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "server_error"


def test_a_snapshot_already_read_serves_while_the_database_is_down(org_a, alice_key, monkeypatch):
    services.tool_create(organization=org_a, name="lookup", url="https://93.184.215.14/t")
    assert [t["function"]["name"] for t in _get("/v1/tools", alice_key).json()["data"]] == [
        "lookup"
    ]
    monkeypatch.setattr(selectors._snapshots, "get_fresh", lambda key: (False, None))
    _database_down(monkeypatch)
    listed = _get("/v1/tools", alice_key)
    assert listed.status_code == 200
    assert [t["function"]["name"] for t in listed.json()["data"]] == ["lookup"]


def test_the_stage_lets_a_chat_go_on_without_tools_when_the_database_is_down(
    alice_key, monkeypatch
):
    principal = principal_for_key(alice_key)
    _database_down(monkeypatch)
    body = {"messages": [{"role": "user", "content": "where is my order"}]}
    call = SimpleNamespace(principal=principal, body=body, annotations={}, stage_state={})
    assert asyncio.run(ToolsStage().on_request(call)) is None
    assert call.body is body
    assert call.annotations == {"tools": {"unavailable": True}}
