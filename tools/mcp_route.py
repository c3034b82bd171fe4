"""The ``/mcp`` route of the ASGI stack, which loads the MCP server on its first request.

The MCP SDK and what it brings (pydantic, Starlette, anyio, httpx: some 500 modules and
50 MB) is imported when ``/mcp`` is first asked for, not when the process starts: a
process that only proxies chat then starts faster (a serverless cold start above all) and
stays smaller, and the first MCP request waits for the import once. The import runs in a
thread so that the event loop keeps serving the other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import importlib

MCP_PATH = "/mcp"


class McpRouter:
    """``application``, with ``/mcp`` (and below) served by the MCP server."""

    def __init__(self, application):
        self.application = application
        self._mcp_app = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            if path == MCP_PATH or path.startswith(MCP_PATH + "/"):
                mcp_app = self._mcp_app or await self._load()
                return await mcp_app(scope, receive, send)
        return await self.application(scope, receive, send)

    async def _load(self):
        # Two first requests at once both wait here; the import lock runs the import once.
        module = await asyncio.to_thread(importlib.import_module, "tools.mcp_server")
        self._mcp_app = module.mcp_app
        return self._mcp_app
