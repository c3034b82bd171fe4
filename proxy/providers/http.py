"""Shared upstream HTTP: one aiohttp connection pool per upstream origin and event loop."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import json
import logging
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
import orjson
from django.conf import settings
from yarl import URL

from common import outbound
from common.access_log import upstream_headers
from common.loops import forget_closed_loops
from proxy.providers.base import UpstreamError, classify_status

logger = logging.getLogger(__name__)

# Keyed by the loop object (see common.loops): a session is bound to its loop, and a closed
# loop's id may be reused by the next one.
_sessions: dict[tuple[asyncio.AbstractEventLoop, str], aiohttp.ClientSession] = {}


def _encode_body(body) -> bytes:
    """The request body as JSON. orjson is about ten times faster than the standard
    library here; what it refuses (integers beyond 64 bits, non-string keys, strings with
    a lone surrogate) goes through the standard library, whose ASCII escapes carry even a
    lone surrogate, so any body the client could send still goes upstream. (Bodies hold no
    NaN or infinite number, which orjson would write as null: the request parser refuses
    them.)"""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body).encode()


def _number_shapes() -> bytes:
    """A translation table: digits become "0", what continues a number past its integer
    part (".", "e", "E") becomes ".", every other byte a space."""
    table = bytearray(b" " * 256)
    for byte in b"0123456789":
        table[byte] = ord("0")
    for byte in b".eE":
        table[byte] = ord(".")
    return bytes(table)


# orjson reads an integer beyond 64 bits as a float, losing digits. Such an integer has
# nineteen digits or more (-2**63 has nineteen) after something that is no digit and no
# point; in the translated bytes that is a space and nineteen "0"s. The long fractions of
# an embedding's floats follow a point, so they do not count. bytes.translate and one
# substring search run several times faster than a regular expression's scan.
_NUMBER_SHAPES = _number_shapes()
_LONG_INTEGER_SHAPE = b" " + b"0" * 19


def _decode(data: bytes):
    """An upstream's JSON. orjson is about four times faster than the standard library;
    what it refuses (NaN, lone surrogates, encodings other than UTF-8) or could read
    inexactly (integers beyond 64 bits) is read by the standard library, which raises
    ValueError for what is not JSON at all."""
    if _LONG_INTEGER_SHAPE not in data.translate(_NUMBER_SHAPES):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


@functools.lru_cache(maxsize=1024)
def _parsed_url(url: str) -> URL:
    # aiohttp parses a string URL anew on every request, and the parsed object works out its
    # host, port and scheme lazily: kept per URL, that work is done once, not per request.
    return URL(url)


@functools.lru_cache(maxsize=16)
def _client_timeout(total: float, connect: float, sock_read: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, connect=connect, sock_read=sock_read)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@functools.lru_cache(maxsize=1024)
def _guarded(origin: str, platform_base_url: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Whether calls to ``origin`` go through the outbound policy: every origin but the
    platform's own upstream and the hosts platform staff allow-listed."""
    if outbound.origin_is_platform(origin):
        return False
    return not outbound.host_allowed(urlsplit(origin).hostname or "")


def guarded(url: str) -> bool:
    return _guarded(_origin(url), settings.OPENAI_BASE_URL, tuple(settings.OUTBOUND_ALLOWED_HOSTS))


def _connector(*, guard: bool) -> aiohttp.TCPConnector:
    options = {}
    if guard:
        # Each resolved address is checked just before it is dialled: DNS rebinding
        # cannot slip an internal address past a check made at save time.
        options["socket_factory"] = outbound.guarded_socket_factory
    return aiohttp.TCPConnector(
        limit=settings.UPSTREAM_POOL_SIZE, ttl_dns_cache=300, keepalive_timeout=30, **options
    )


def session_for(url: str) -> aiohttp.ClientSession:
    """The pool for this upstream. Keyed by loop too: a session is bound to its loop."""
    loop = asyncio.get_running_loop()
    key = (loop, _origin(url))
    session = _sessions.get(key)
    if session is None or session.closed:
        forget_closed_loops(_sessions, loop_of=lambda registry_key: registry_key[0])
        connector = _connector(guard=guarded(url))
        session = aiohttp.ClientSession(
            connector=connector,
            json_serialize_bytes=_encode_body,
            raise_for_status=False,
            auto_decompress=True,
            # One session serves every tenant: a cookie an upstream sets for one request
            # must not ride along on another organization's. (It also skips cookie
            # filtering on every request.)
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        _sessions[key] = session
    return session


def request_timeout(*, stream: bool = False) -> aiohttp.ClientTimeout:
    return _client_timeout(
        settings.UPSTREAM_TOTAL_TIMEOUT,
        settings.UPSTREAM_CONNECT_TIMEOUT,
        # The longest silence: waiting for the answer, or (streams) for each next chunk.
        settings.UPSTREAM_STREAM_IDLE_TIMEOUT if stream else settings.UPSTREAM_READ_TIMEOUT,
    )


def _seconds(text: str, scale: float = 1.0) -> float | None:
    try:
        value = float(text) / scale
    except ValueError:
        return None
    # "inf" and "nan" parse as floats; no pause is infinite or negative.
    return value if math.isfinite(value) and value >= 0 else None


def _retry_after(headers) -> float | None:
    """The pause an upstream asks for, in seconds; None when it asks for none we can use."""
    value = headers.get("retry-after-ms")
    if value:
        seconds = _seconds(value, scale=1000)
        if seconds is not None:
            return seconds
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    # The other form HTTP allows: a date ("Wed, 21 Oct 2026 07:28:00 GMT").
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None


def _secrets_in(headers: dict) -> tuple[str, ...]:
    """The credential a request carries, to be redacted from whatever the upstream says."""
    found = []
    for name, value in headers.items():
        if name.lower() in ("authorization", "api-key", "x-api-key") and value:
            found.append(value.split(" ", 1)[1] if " " in value else value)
    return tuple(found)


async def _error_from_response(
    response: aiohttp.ClientResponse, secrets: tuple[str, ...]
) -> UpstreamError:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        body = None
    return classify_status(response.status, body, _retry_after(response.headers), secrets=secrets)


# One message for every way a connection can fail (refused, reset, not HTTP, refused by
# the outbound policy): different ones would tell a client whether a port is open.
UNREACHABLE = "Could not reach the upstream provider."


def _connection_error(exc: Exception) -> UpstreamError:
    if isinstance(exc, asyncio.TimeoutError):
        # A connection that could not be made may be made on a second try; an upstream
        # that went silent after accepting the request is not asked again (the gateway
        # moves on to the next deployment): retrying it made a hung upstream cost minutes.
        return UpstreamError(
            "The upstream provider did not answer in time.",
            retryable=isinstance(exc, aiohttp.ConnectionTimeoutError),
            code="upstream_timeout",
        )
    logger.warning("upstream connection failed: %s: %s", type(exc).__name__, exc)
    return UpstreamError(UNREACHABLE, retryable=True)


@functools.lru_cache(maxsize=1024)
def _url_problem(url: str, allowed_hosts: tuple[str, ...], allow_http: bool) -> str | None:
    # Per URL and policy: the same few URLs are called over and over.
    return outbound.url_problem(url, resolve=False, allow_query=True)


def _refused_by_policy(url: str) -> UpstreamError | None:
    """An organization's URL that the outbound policy refuses (a row saved before the
    policy, or a setting changed since): logged with the reason, answered generically."""
    if not guarded(url):
        return None
    problem = _url_problem(
        url, tuple(settings.OUTBOUND_ALLOWED_HOSTS), settings.OUTBOUND_ALLOW_HTTP
    )
    if problem is None:
        return None
    logger.warning("outbound policy refused an upstream URL: %s", problem)
    return UpstreamError(UNREACHABLE, retryable=False)


@contextlib.asynccontextmanager
async def _upstream_response(
    method: str,
    url: str,
    *,
    headers: dict,
    body: dict | None = None,
    stream: bool = False,
    form: aiohttp.FormData | None = None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """A successful upstream response, through the shared pool and the configured timeouts.

    An error status becomes the matching UpstreamError; a timeout or connection failure,
    whether while connecting or while the caller reads the body, a retryable one."""
    refused = _refused_by_policy(url)
    if refused is not None:
        raise refused
    session = session_for(url)
    try:
        async with session.request(
            method,
            _parsed_url(url),
            json=body,
            data=form,
            # The client's request id (and trace context) go with every upstream call, so
            # the upstream's own logs can be matched with ours.
            headers={**upstream_headers(), **headers},
            timeout=request_timeout(stream=stream),
            # A redirect would let an upstream send the proxy (and the provider key)
            # anywhere, past the outbound policy's check of the URL.
            allow_redirects=False,
        ) as response:
            if 300 <= response.status < 400:
                raise UpstreamError(
                    f"The upstream provider answered with a redirect ({response.status}), "
                    "which the proxy does not follow.",
                    upstream_status=response.status,
                )
            if response.status >= 400:
                raise await _error_from_response(response, _secrets_in(headers))
            yield response
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _connection_error(exc) from exc


def _json_object(raw: bytes) -> dict:
    # A wrong base URL answers 200 with a login page; a broken upstream with anything.
    try:
        payload = _decode(raw)
    except (ValueError, RecursionError):
        raise UpstreamError(
            "The upstream provider sent a body that is not JSON.", retryable=True
        ) from None
    if not isinstance(payload, dict):
        raise UpstreamError(
            "The upstream provider sent JSON that is not an object.", retryable=True
        )
    return payload


async def post_json(url: str, *, headers: dict, body: dict) -> tuple[dict, dict, bytes]:
    """The upstream's JSON answer, its headers and its raw bytes (passed on unchanged
    when the proxy has nothing to change in it, which saves serialising it again)."""
    async with _upstream_response("POST", url, headers=headers, body=body) as response:
        raw = await response.read()
        return _json_object(raw), dict(response.headers), raw


async def get_json(url: str, *, headers: dict) -> dict:
    async with _upstream_response("GET", url, headers=headers) as response:
        return _json_object(await response.read())


async def post_sse(url: str, *, headers: dict, body: dict) -> AsyncIterator[tuple[str, dict]]:
    """POST and yield ``(event name, parsed data)`` for each server-sent event.

    Leaving the generator early (the client hung up) closes the response, which
    closes the upstream connection: the upstream stops generating.
    """
    async with _upstream_response("POST", url, headers=headers, body=body, stream=True) as response:
        event = ""
        async for raw_line in response.content:
            # Bytes, as they came: the decoder reads UTF-8 itself.
            line = raw_line.rstrip(b"\r\n")
            if not line:
                event = ""
                continue
            if line.startswith(b"event:"):
                event = line[6:].strip().decode("utf-8", "replace")
                continue
            if not line.startswith(b"data:"):
                continue  # comments (": keep-alive") and unknown fields
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            try:
                parsed = _decode(data)
            except (ValueError, RecursionError):
                raise UpstreamError(
                    "The upstream provider sent a malformed stream event.", retryable=False
                ) from None
            if isinstance(parsed, dict) and "error" in parsed and not event:
                raise classify_status(500, parsed, None, secrets=_secrets_in(headers))
            yield event, parsed


# --- Binary bodies and uploads (audio, images, files) -------------------------------------


async def post_bytes_stream(url: str, *, headers: dict, body: dict) -> AsyncIterator[str | bytes]:
    """POST JSON and yield the answer's content type, then its body in chunks as they come
    (speech): a client hears the start before the upstream has finished."""
    async with _upstream_response("POST", url, headers=headers, body=body, stream=True) as response:
        yield response.headers.get("Content-Type", "application/octet-stream")
        async for chunk in response.content.iter_any():
            yield chunk


def form_data(
    fields: list[tuple[str, str]], files: dict[str, tuple[str, bytes, str]]
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields:
        form.add_field(name, value)
    for name, (filename, content, content_type) in files.items():
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form


async def request_raw(
    method: str, url: str, *, headers: dict, body: dict | None = None, form=None
) -> tuple[bytes, dict]:
    """Any request; the answer's raw bytes and headers (text, JSON or binary alike)."""
    async with _upstream_response(method, url, headers=headers, body=body, form=form) as response:
        return await response.read(), dict(response.headers)


def json_of(raw: bytes) -> dict:
    return _json_object(raw)
