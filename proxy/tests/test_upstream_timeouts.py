"""A hung upstream fails within a minute by default, and is not waited on three times."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from aiohttp import web
from django.conf import settings as django_settings

from accounts.selectors import Principal
from proxy import gateway, routing
from proxy.providers import http
from proxy.providers.base import UpstreamError


def test_the_default_timeouts_fail_a_hung_upstream_within_a_minute():
    env = {key: value for key, value in os.environ.items() if not key.startswith("UPSTREAM_")}
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps([settings.UPSTREAM_CONNECT_TIMEOUT, settings.UPSTREAM_READ_TIMEOUT, "
        "settings.UPSTREAM_STREAM_IDLE_TIMEOUT]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=django_settings.BASE_DIR,
        env={
            **env,
            "DEBUG": "true",
            "LOG_FILE": "",
            "DJANGO_SETTINGS_MODULE": "synthlang_site.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    connect, read, stream_idle = json.loads(done.stdout.strip().splitlines()[-1])
    assert connect + read < 60
    assert connect + stream_idle < 60


def _principal() -> Principal:
    return Principal(
        key_id=1,
        key_prefix="sk-test",
        organization_id=1,
        organization_slug="org-a",
        user_id=1,
        username="alice",
        role="admin",
        expires_at=None,
    )


def _hung_upstream(scenario, *, first_chunk: bool = False):
    """An upstream that accepts a request and then says nothing (after one stream chunk
    when ``first_chunk``); ``scenario(base_url, seen)`` runs against it."""
    seen: list[str] = []

    async def handler(request):
        seen.append(request.path)
        if first_chunk:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            chunk = {"id": "c", "object": "chat.completion.chunk", "choices": []}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await asyncio.sleep(3600)

    async def run():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"
        try:
            return await scenario(base_url, seen)
        finally:
            await http.session_for(base_url).close()
            await runner.cleanup()

    return asyncio.run(run())


def test_a_silent_upstream_is_asked_once_not_once_per_retry(settings, monkeypatch):
    settings.UPSTREAM_READ_TIMEOUT = 0.3
    settings.UPSTREAM_MAX_RETRIES = 2
    settings.UPSTREAM_BACKOFF_BASE = 0
    settings.UPSTREAM_BACKOFF_MAX = 0
    monkeypatch.setattr(routing, "deployment_failed", lambda label: None)

    async def scenario(base_url, seen):
        deployment = routing.DeploymentPlan(
            provider="openai", upstream_model="m", base_url=base_url, deployment_id=7
        )
        plan = routing.RoutePlan(model="m", deployments=(deployment,), routed=True)
        call = gateway.ProxyCall(
            principal=_principal(),
            request_id="req_hung",
            endpoint="chat.completions",
            model="m",
            body={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )

        async def operation(provider, target):
            return await provider.chat(target, call.body)

        with pytest.raises(UpstreamError) as raised:
            await gateway.call_upstream(call, plan, operation)
        return raised.value, list(seen)

    error, seen = _hung_upstream(scenario)
    assert error.code == "upstream_timeout"
    assert seen == ["/v1/chat/completions"]


def test_a_stream_that_goes_silent_fails_after_the_idle_timeout(settings):
    settings.UPSTREAM_STREAM_IDLE_TIMEOUT = 0.3
    settings.UPSTREAM_READ_TIMEOUT = 600  # the non-stream wait must not decide this

    async def scenario(base_url, seen):
        chunks = []
        with pytest.raises(UpstreamError) as raised:
            async with asyncio.timeout(30):
                async for _event, chunk in http.post_sse(
                    f"{base_url}/chat/completions", headers={}, body={"stream": True}
                ):
                    chunks.append(chunk)
        return raised.value, chunks

    error, chunks = _hung_upstream(scenario, first_chunk=True)
    assert error.code == "upstream_timeout"
    assert len(chunks) == 1
