"""The tool registry as an MCP server over streamable HTTP (the official ``mcp`` SDK).

Mounted in the ASGI app at ``/mcp`` (``tools.mcp_route``, which imports this module on
the first request there). A client authenticates with its proxy
key (``Authorization: Bearer sk-syn-...`` or ``x-api-key``), exactly as on ``/v1/``; the
server lists that key's organization's tools (``tools/list``) and calls them
(``tools/call``) through ``tools.invoke.tool_call``, the code behind ``POST /v1/tools/call``.

Why it is built this way (docs/decisions/0033):

- Stateless, JSON answers. Every HTTP request gets a fresh MCP transport and server task,
  so nothing of one key's request can serve another key's, any instance behind the load
  balancer can answer any request, and no session table grows in memory.
- The caller is handed to the handlers in a context variable set before the SDK runs: the
  SDK starts the request's server task from the request's own task, so the task (and the
  handlers it runs) inherit the variable, and a stateless transport never outlives it.
- The SDK's session manager must run (``run()``) around the requests it serves, normally
  from a Starlette lifespan. Daphne sends no lifespan events, so it is started on the first
  request, once per event loop, in a task that lives as long as the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers

from accounts.selectors import Principal, aprincipal_for_key, raw_key_from_headers
from common.errors import DomainError, ServiceUnavailable, error_body
from common.outages import is_outage_error, unavailable_for
from tools.invoke import tool_call
from tools.selectors import organization_tools

logger = logging.getLogger(__name__)

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "synthlang_mcp_principal", default=None
)


def _caller() -> Principal:
    principal = _principal.get()
    if principal is None:  # the ASGI wrapper authenticates first; never reached without it
        raise RuntimeError("MCP handler called without an authenticated caller")
    return principal


async def _list_tools(ctx, params) -> types.ListToolsResult:
    snapshot = await organization_tools(organization_id=_caller().organization_id)
    return types.ListToolsResult(
        tools=[
            types.Tool(name=spec.name, description=spec.description, input_schema=spec.parameters)
            for spec in snapshot.tools.values()
        ]
    )


def _error_result(message: str) -> types.CallToolResult:
    # A failed call is a result the model can read (MCP's is_error), not a protocol error.
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


async def _call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    try:
        result = await tool_call(
            principal=_caller(), name=params.name, arguments=params.arguments or {}
        )
    except DomainError as error:
        return _error_result(error.message)
    except Exception as error:
        if not is_outage_error(error):
            raise
        return _error_result(unavailable_for(error).message)
    structured = result.content if result.is_json and isinstance(result.content, dict) else None
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=result.as_text())],
        structured_content=structured,
    )


def _new_manager() -> StreamableHTTPSessionManager:
    server = Server(
        "synthlang-tools",
        instructions="The tools your organization registered in SynthLang Proxy.",
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
    )
    return StreamableHTTPSessionManager(app=server, json_response=True, stateless=True)


class _LoopManagers:
    """One running session manager per event loop (a manager is bound to its task group)."""

    def __init__(self) -> None:
        self._managers: dict[asyncio.AbstractEventLoop, StreamableHTTPSessionManager] = {}
        self._starting: dict[asyncio.AbstractEventLoop, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()  # held, so a running task is not collected

    async def get(self) -> StreamableHTTPSessionManager:
        loop = asyncio.get_running_loop()
        manager = self._managers.get(loop)
        if manager is not None:
            return manager
        starting = self._starting.get(loop)
        if starting is None:
            starting = loop.create_future()
            self._starting[loop] = starting
            task = loop.create_task(self._run(loop, starting))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(starting)

    async def _run(self, loop, started: asyncio.Future) -> None:
        manager = _new_manager()
        try:
            async with manager.run():
                self._managers[loop] = manager
                started.set_result(manager)
                await asyncio.Event().wait()  # until the loop ends
        except BaseException as error:
            if not started.done():
                started.set_exception(error)
            raise
        finally:
            self._managers.pop(loop, None)
            self._starting.pop(loop, None)


_managers = _LoopManagers()


async def _send_json(send, status: int, payload: dict, headers=()) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _authenticate(scope) -> Principal:
    # Case-insensitive, as the selector reads "Authorization" and "x-api-key".
    return await aprincipal_for_key(raw_key_from_headers(Headers(scope=scope)))


async def mcp_app(scope, receive, send) -> None:
    """The ASGI app at ``/mcp``: authenticate, then hand over to the SDK."""
    try:
        principal = await _authenticate(scope)
    except DomainError as error:
        extra = [(b"www-authenticate", b"Bearer")] if error.status == 401 else []
        await _send_json(
            send, error.status, error_body(message=error.message, code=error.code), extra
        )
        return
    except Exception as error:
        if not is_outage_error(error):
            raise
        refusal = unavailable_for(error)
        await _send_json(
            send, refusal.status, error_body(message=refusal.message, code=refusal.code)
        )
        return
    try:
        manager = await _managers.get()
    except Exception:
        logger.exception("the MCP session manager did not start")
        refusal = ServiceUnavailable("The MCP server is not available.")
        await _send_json(
            send, refusal.status, error_body(message=refusal.message, code=refusal.code)
        )
        return
    token = _principal.set(principal)
    try:
        await manager.handle_request(scope, receive, send)
    finally:
        _principal.reset(token)
