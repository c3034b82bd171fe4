"""The API's ASGI handler, driven the way Daphne drives it."""

from __future__ import annotations

import asyncio
import gc

import pytest

from synthlang_site.api_handler import ApiASGIHandler

ENDPOINTS = [("GET", "/v1/models"), ("POST", "/v1/chat/completions")]


@pytest.fixture(autouse=True)
def _fast_paths_on(settings):
    # These tests are about the fast paths themselves: they run in both CI passes.
    settings.SYNTHLANG_FAST_PATHS = True


async def _one_request(handler, method: str, path: str) -> list[dict]:
    """One request as Daphne delivers it: the body, then (like Daphne after every complete
    response) ``http.disconnect``."""
    sent: list[dict] = []
    body_delivered = False
    complete = asyncio.Event()

    async def receive():
        nonlocal body_delivered
        if not body_delivered:
            body_delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            complete.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await handler(scope, receive, send)
    return sent


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_the_response_is_sent_and_the_disconnect_after_it_is_not_an_error(method, path):
    sent = asyncio.run(_one_request(ApiASGIHandler(), method, path))
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 401  # no key: an OpenAI-format error, not a crash
    assert b'"invalid_api_key"' in sent[1]["body"]


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_requests_leave_no_reference_cycles_for_the_garbage_collector(method, path):
    """Each request's objects are freed by reference counting as soon as it ends. Django's
    own disconnect listener raised an exception per request whose traceback held the
    request's whole object graph in a cycle (about ninety objects per request for the
    collector to find), and Django's View.setup tied each GET view to itself (twenty)."""
    handler = ApiASGIHandler()

    async def requests(count):
        for _ in range(count):
            await _one_request(handler, method, path)

    asyncio.run(requests(3))  # first-use caches and lazily built objects
    gc.collect()
    gc.disable()
    try:
        asyncio.run(requests(50))
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable < 50  # under one object per request
