"""The ``/mcp`` route: other paths pass by, and the MCP server is loaded on first use."""

from __future__ import annotations

import asyncio
import json

from tools.mcp_route import McpRouter


class _Recorder:
    """An ASGI app that notes the paths it was given."""

    def __init__(self):
        self.paths = []

    async def __call__(self, scope, receive, send):
        self.paths.append(scope["path"])


def _http(path: str) -> dict:
    return {"type": "http", "path": path, "method": "POST", "headers": []}


async def _call(router, scope) -> list[dict]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await router(scope, receive, send)
    return sent


def test_other_paths_go_to_the_application_without_loading_the_server():
    inner = _Recorder()
    router = McpRouter(inner)
    for path in ("/v1/chat/completions", "/mcpx", "/admin/"):
        assert asyncio.run(_call(router, _http(path))) == []
    assert inner.paths == ["/v1/chat/completions", "/mcpx", "/admin/"]
    assert router._mcp_app is None


def test_the_first_mcp_request_loads_the_server_which_answers_it():
    inner = _Recorder()
    router = McpRouter(inner)
    # No key: the MCP server itself refuses, in the proxy's error shape, before any lookup.
    sent = asyncio.run(_call(router, _http("/mcp")))
    assert sent[0]["status"] == 401
    assert json.loads(sent[1]["body"])["error"]["code"] == "invalid_api_key"
    assert inner.paths == []
    loaded = router._mcp_app
    assert loaded is not None
    asyncio.run(_call(router, _http("/mcp/")))
    assert router._mcp_app is loaded  # loaded once
