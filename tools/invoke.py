"""Calling a registered tool: the one code path behind ``POST /v1/tools/call`` and MCP's
``tools/call``.

The proxy POSTs the arguments as JSON to the URL an organization admin registered, with
the tool's secret as a bearer token. The URL is checked against the outbound policy again
here (it may have changed since it was saved) and every dialled address at connect time;
redirects are not followed; the answer is read up to ``TOOLS_MAX_RESPONSE_BYTES``. No
error text ever carries the secret: an answer that echoes it has it replaced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import jsonschema
from django.conf import settings
from prometheus_client import Counter

from accounts.crypto import decrypt_secret
from accounts.selectors import Principal
from billing.usage import ausage_record
from common import outbound
from common.errors import DomainError, InvalidRequest, PermissionDenied, RequestTimeout
from proxy import ratelimit
from proxy.providers.http import session_for
from tools.selectors import ToolSpec, tool_spec_get

logger = logging.getLogger(__name__)

REDACTED = "[REDACTED]"

# Label values come from a bounded set: the outcome, never the tool's name.
TOOL_CALLS = Counter("synthlang_tool_calls_total", "Registered tool calls by outcome.", ["outcome"])


class ToolUpstreamError(DomainError):
    code = "upstream_error"
    message = "The tool failed."


class ToolTimeout(RequestTimeout):
    code = "request_timeout"
    message = "The tool did not answer in time."


@dataclass
class ToolResult:
    name: str
    status: int
    content: object  # the tool's JSON answer, or its text
    is_json: bool

    def as_openai(self) -> dict:
        return {"object": "tool.result", "name": self.name, "content": self.content}

    def as_text(self) -> str:
        if self.is_json:
            return json.dumps(self.content, ensure_ascii=False)
        return str(self.content)


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, REDACTED) if secret else text


def _redact_json(value, secret: str):
    if not secret:
        return value
    if isinstance(value, str):
        return _redact(value, secret)
    if isinstance(value, list):
        return [_redact_json(item, secret) for item in value]
    if isinstance(value, dict):
        return {_redact(str(k), secret): _redact_json(v, secret) for k, v in value.items()}
    return value


def check_arguments(spec: ToolSpec, arguments) -> dict:
    """The arguments as the tool's schema requires them; a clear 400 otherwise."""
    if isinstance(arguments, str):
        # OpenAI's tool calls carry their arguments as a JSON string.
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise InvalidRequest("The arguments are not valid JSON.", param="arguments") from None
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidRequest("The arguments must be a JSON object.", param="arguments")
    try:
        jsonschema.validate(arguments, spec.parameters)
    except jsonschema.ValidationError as error:
        raise InvalidRequest(
            f"The arguments do not match the tool's schema: {error.message}", param="arguments"
        ) from None
    return arguments


async def _read_capped(response, limit: int) -> bytes:
    """At most ``limit + 1`` bytes: enough to tell an answer that is too large."""
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


async def _post(spec: ToolSpec, arguments: dict, secret: str) -> ToolResult:
    problem = outbound.url_problem(spec.url, resolve=False)
    if problem:
        raise PermissionDenied(f"The tool's URL is not allowed: {problem}")
    headers = {"content-type": "application/json", "user-agent": "synthlang-proxy-tools"}
    if secret:
        headers["authorization"] = f"Bearer {secret}"
    limit = settings.TOOLS_MAX_RESPONSE_BYTES
    try:
        async with asyncio.timeout(spec.timeout_seconds):
            async with session_for(spec.url).post(
                spec.url,
                data=json.dumps(arguments).encode(),
                headers=headers,
                allow_redirects=False,
            ) as response:
                raw = await _read_capped(response, limit)
                status = response.status
                content_type = response.headers.get("content-type", "")
    except TimeoutError:
        raise ToolTimeout(
            f"The tool {spec.name!r} did not answer within {spec.timeout_seconds:g} s."
        ) from None
    except aiohttp.ClientConnectorError as error:
        if isinstance(error.os_error, outbound.OutboundRefused):
            raise PermissionDenied(
                f"The tool {spec.name!r} resolves to an address the outbound policy refuses."
            ) from None
        raise ToolUpstreamError(f"The tool {spec.name!r} could not be reached.") from None
    except aiohttp.ClientError:
        raise ToolUpstreamError(f"The tool {spec.name!r} failed to answer.") from None
    if len(raw) > limit:
        raise ToolUpstreamError(f"The tool {spec.name!r} answered more than {limit} bytes.")
    text = _redact(raw.decode("utf-8", errors="replace"), secret)
    if status >= 300:
        # 3xx included: a redirect is not followed, and so is not an answer.
        raise ToolUpstreamError(f"The tool {spec.name!r} answered HTTP {status}: {text[:200]}")
    if "json" in content_type:
        try:
            return ToolResult(spec.name, status, _redact_json(json.loads(raw), secret), True)
        except ValueError:
            pass
    return ToolResult(spec.name, status, text, False)


async def _account(
    principal: Principal, spec: ToolSpec, request_id: str, status: int, code: str, ms: float
):
    # An event of its own endpoint, priced at nothing: a tool call costs the proxy no tokens.
    event = {
        "request_id": request_id,
        "created_at": datetime.now(tz=UTC).isoformat(),
        "organization_id": principal.organization_id,
        "user_id": principal.user_id,
        "api_key_id": principal.key_id,
        "endpoint": "tools.call",
        "model": f"tool:{spec.name}",
        "provider": "tool",
        "status_code": status,
        "error_code": code,
        "latency_ms": round(ms, 3),
        "upstream_ms": round(ms, 3),
        "metadata": {"tool": spec.name},
    }
    try:
        await ausage_record(event)
    except Exception:
        logger.exception("could not hand over the usage event of tool %s", spec.name)


async def tool_call(
    *, principal: Principal, name: str, arguments, request_id: str = ""
) -> ToolResult:
    """Call the caller's organization's tool ``name``; a DomainError on every failure."""
    request_id = request_id or f"tool-{uuid.uuid4().hex}"
    spec = await tool_spec_get(organization_id=principal.organization_id, name=name)
    # Counted as a request against the key's and organization's limits, like any call.
    await ratelimit.admit(principal, tokens=0)
    checked = check_arguments(spec, arguments)
    secret = decrypt_secret(spec.encrypted_secret) if spec.encrypted_secret else ""
    started = time.perf_counter()
    try:
        result = await _post(spec, checked, secret)
    except DomainError as error:
        TOOL_CALLS.labels(outcome=error.code).inc()
        await _account(principal, spec, request_id, error.status, error.code, _ms(started))
        raise
    TOOL_CALLS.labels(outcome="ok").inc()
    await _account(principal, spec, request_id, 200, "", _ms(started))
    return result


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
