"""Secrets never travel back from an upstream: not to the client, the logs or the admin."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web

from common.logging import RedactSecretsFilter, redact
from proxy.providers import http
from proxy.providers.base import UpstreamError

PROVIDER_KEY = "sk-proj-Zq81vLmN0pQrStUvWxYz0123456789abcd"
# A self-hosted server's key has no recognisable shape: only knowing it redacts it.
SHAPELESS_KEY = "vllm-shared-2Fh8Kq"


def _upstream_error(status: int, payload: dict, *, key: str, stream: bool = False):
    async def handler(request):
        if stream:
            body = b"data: " + json.dumps(payload).encode() + b"\n\n"
            return web.Response(body=body, content_type="text/event-stream")
        return web.json_response(payload, status=status)

    async def scenario():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {key}"}
        try:
            with pytest.raises(UpstreamError) as raised:
                if stream:
                    async for _ in http.post_sse(url, headers=headers, body={}):
                        pass
                else:
                    await http.post_json(url, headers=headers, body={})
            return raised.value
        finally:
            await http.session_for(url).close()
            await runner.cleanup()

    return asyncio.run(scenario())


@pytest.mark.parametrize("status", [400, 404, 422, 500, 503])
def test_an_upstream_error_that_echoes_the_provider_key_does_not_pass_it_on(status):
    echoed = f"Incorrect API key provided: {PROVIDER_KEY}. You can find your API key at ..."
    error = _upstream_error(status, {"error": {"message": echoed}}, key=PROVIDER_KEY)
    assert PROVIDER_KEY not in error.message
    assert "[REDACTED]" in error.message
    assert PROVIDER_KEY not in json.dumps(error.upstream_body)


def test_the_credential_in_use_is_redacted_whatever_its_shape():
    echoed = f"key {SHAPELESS_KEY} is not allowed to use this model"
    error = _upstream_error(400, {"error": {"message": echoed}}, key=SHAPELESS_KEY)
    assert SHAPELESS_KEY not in error.message


def test_a_stream_error_event_is_redacted_too():
    payload = {"error": {"message": f"bad key {PROVIDER_KEY}"}}
    error = _upstream_error(200, payload, key=PROVIDER_KEY, stream=True)
    assert PROVIDER_KEY not in error.message


@pytest.mark.parametrize(
    "secret",
    [
        PROVIDER_KEY,
        "sk-proj-abc1*****************wxyz",  # OpenAI's half-masked echo
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
        "AKIAIOSFODNN7EXAMPLE",
        "gsk_4f8a9b0c1d2e3f4a5b6c7d8e9f0a",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz",
        "xai-AbCdEfGhIjKlMnOpQrSt",
        "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ],
)
def test_secret_shaped_strings_are_redacted(secret):
    assert secret not in redact(f"upstream said: {secret} (request abc)")


def test_ordinary_text_is_left_alone():
    text = "Ask the task-management skill about risk-free sk-8 rates and tokens."
    assert redact(text) == text


def test_a_logged_upstream_error_is_redacted():
    record = logging.makeLogRecord(
        {"msg": "upstream failed: %s", "args": (f"Incorrect API key provided: {PROVIDER_KEY}",)}
    )
    RedactSecretsFilter().filter(record)
    assert PROVIDER_KEY not in record.getMessage()


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("BEARER AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
        ("Authorization: Bearer AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
        ("API_KEY=AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("Api-Key: AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("apikey: 'AbCdEfGhIjKl'", "AbCdEfGhIjKl"),
        ("x-api-key=AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("PASSWORD: AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("Secret=AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("TOKEN: AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("sk_live_AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("rk_live_AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("pk_test_AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("xoxb-AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("r8_AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("gho_AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("ghs_AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("ghu_AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("github_pat_AbCdEfGhIjKl", "AbCdEfGhIjKl"),
        ("ASIAIOSFODNN7EXAMPLE", "IOSFODNN7EXAMPLE"),
        ("gAAAAABkAbCdEfGhIjKlMnOpQrSt", "AbCdEfGhIjKlMnOpQrSt"),
    ],
)
def test_the_quick_check_before_the_patterns_lets_every_shape_through(text, secret):
    """Before the patterns run, one search of the lower-cased text looks for what every
    one of them needs: each shape here, whatever its case, must get past it."""
    assert secret not in redact(f"upstream said: {text} (request abc)")
