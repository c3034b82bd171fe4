"""Where an organization can make the proxy connect: public https hosts, or what staff
allow-listed. The tests' own upstreams listen on 127.0.0.1, which the test settings
allow-list (as an operator allow-lists an internal host); 127.0.0.2 is loopback too and
is not on the list, so it stands for "the proxy's own network"."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from accounts import services
from common.errors import InvalidRequest
from proxy.providers import http
from proxy.providers.base import UpstreamError

INTERNAL_URLS = [
    "http://127.0.0.2:6379/v1",
    "https://127.0.0.2/v1",
    "https://[::1]:8000/v1",
    "https://[::ffff:127.0.0.2]/v1",
    "https://localhost:6379/v1",
    "https://redis.localhost/v1",
    "https://169.254.169.254/latest/meta-data",
    "https://10.1.2.3/v1",
    "https://172.16.0.9/v1",
    "https://192.168.1.1/v1",
    "https://100.64.0.1/v1",
    "https://224.0.0.1/v1",
    "https://0.0.0.0/v1",
    "https://240.0.0.1/v1",
]
TRICK_URLS = [
    "https://api.example.com/v1#",
    "https://api.example.com/admin?x=",
    "http://api.example.com/v1",
    "ftp://api.example.com/v1",
    "https://user:secret@api.example.com/v1",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", INTERNAL_URLS + TRICK_URLS)
def test_an_organization_cannot_point_a_provider_key_at_an_internal_or_tricky_url(
    org_a, url, settings
):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with pytest.raises(InvalidRequest) as refused:
        services.provider_credential_set(
            organization=org_a, provider="openai", key="sk-org-key-1234", base_url=url, actor=None
        )
    assert refused.value.param == "base_url"
    assert refused.value.message.startswith("base_url: The ")


@pytest.mark.django_db
def test_a_public_https_url_and_an_allow_listed_internal_host_are_accepted(org_a, settings):
    services.provider_credential_set(
        organization=org_a,
        provider="openai",
        key="sk-org-key-1234",
        base_url="https://llm.example.com/v1",
        actor=None,
    )
    settings.OUTBOUND_ALLOWED_HOSTS = ["10.0.0.0/8", "vllm.internal"]
    for url in ("http://10.1.2.3:8000/v1", "http://vllm.internal:8000/v1"):
        credential = services.provider_credential_set(
            organization=org_a, provider="openai", key="sk-org-key-1234", base_url=url, actor=None
        )
        assert credential.base_url == url


@pytest.mark.django_db
def test_the_admin_explains_why_a_base_url_is_refused(client, alice, org_a):
    client.force_login(alice)
    response = client.post(
        "/admin/accounts/providercredential/add/",
        {
            "organization": org_a.pk,
            "provider": "openai",
            "name": "default",
            "key": "sk-org-key-1234",
            "base_url": "http://127.0.0.2:6379/",
            "options": "{}",
        },
    )
    assert response.status_code == 200  # the form again, with the reason
    assert "allow-list" in response.content.decode()
    assert not org_a.provider_credentials.exists()


@pytest.mark.django_db
def test_an_azure_api_version_cannot_carry_a_query(org_a):
    with pytest.raises(InvalidRequest):
        services.provider_credential_set(
            organization=org_a,
            provider="azure",
            key="sk-org-key-1234",
            base_url="https://acme.openai.azure.com",
            options={"api_version": "2024-10-21&x=1#"},
            actor=None,
        )


# --- At connect time ------------------------------------------------------------------


def _serve(handler, host: str):
    """Start an aiohttp app on ``host``; returns (runner, port). Call inside a loop."""

    async def start():
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]

    return start()


def _resolving(monkeypatch, name: str, address: str):
    """Make ``name`` resolve to ``address``, as a DNS record an attacker controls would."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == name:
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _post_and_count(url: str, host: str):
    seen = []

    async def handler(request):
        seen.append(request.path)
        return web.json_response({"secret": "internal service answer"})

    async def scenario():
        runner, port = await _serve(handler, host)
        target = url.format(port=port)
        try:
            try:
                return await http.post_json(target, headers={}, body={}), seen
            except UpstreamError as error:
                return error, seen
        finally:
            await http.session_for(target).close()
            await runner.cleanup()

    return asyncio.run(scenario())


def test_a_name_that_resolves_to_an_internal_address_at_connect_time_is_refused(
    monkeypatch, settings
):
    """DNS rebinding: the name passed the check when saved; the address dialled is checked."""
    settings.OUTBOUND_ALLOW_HTTP = True  # the address alone decides here
    _resolving(monkeypatch, "upstream.rebind.test", "127.0.0.2")
    result, seen = _post_and_count("http://upstream.rebind.test:{port}/v1/chat", "127.0.0.2")
    assert isinstance(result, UpstreamError)
    assert result.message == http.UNREACHABLE
    assert seen == []


def test_the_same_internal_host_answers_once_staff_allow_list_it(monkeypatch, settings):
    settings.OUTBOUND_ALLOW_HTTP = True
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1", "127.0.0.2"]
    _resolving(monkeypatch, "upstream.rebind.test", "127.0.0.2")
    result, seen = _post_and_count("http://upstream.rebind.test:{port}/v1/chat", "127.0.0.2")
    assert not isinstance(result, UpstreamError)
    assert seen == ["/v1/chat"]


def test_a_url_saved_before_the_policy_is_refused_when_called():
    result, seen = _post_and_count("http://127.0.0.2:{port}/v1/chat", "127.0.0.2")
    assert isinstance(result, UpstreamError)
    assert result.message == http.UNREACHABLE
    assert seen == []


def test_the_platforms_own_base_url_is_not_restricted(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = []

    async def handler(request):
        return web.json_response({"ok": True})

    async def scenario():
        runner, port = await _serve(handler, "127.0.0.2")
        settings.OPENAI_BASE_URL = f"http://127.0.0.2:{port}/v1"
        try:
            payload, _, _ = await http.post_json(
                f"{settings.OPENAI_BASE_URL}/chat/completions", headers={}, body={}
            )
            return payload
        finally:
            await http.session_for(settings.OPENAI_BASE_URL).close()
            await runner.cleanup()

    assert asyncio.run(scenario()) == {"ok": True}


def test_an_upstream_redirect_is_not_followed():
    reached = []

    async def handler(request):
        if request.path == "/v1/chat":
            raise web.HTTPTemporaryRedirect("/internal/admin")
        reached.append(request.path)
        return web.json_response({"leaked": True})

    async def scenario():
        runner, port = await _serve(handler, "127.0.0.1")
        url = f"http://127.0.0.1:{port}/v1/chat"
        try:
            with pytest.raises(UpstreamError) as raised:
                await http.post_json(url, headers={}, body={})
            return raised.value
        finally:
            await http.session_for(url).close()
            await runner.cleanup()

    error = asyncio.run(scenario())
    assert "redirect" in error.message
    assert reached == []


def test_closed_and_non_http_ports_look_the_same_to_the_client():
    """Different errors for an open, a closed and a non-HTTP port make a port scanner."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()

    async def redis_like(reader, writer):
        await reader.read(100)
        writer.write(b"-ERR unknown command 'POST'\r\n")
        await writer.drain()
        writer.close()

    async def scenario():
        server = await asyncio.start_server(redis_like, "127.0.0.1", 0)
        other_port = server.sockets[0].getsockname()[1]
        messages = []
        for port in (closed_port, other_port):
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            try:
                with pytest.raises(UpstreamError) as raised:
                    await http.post_json(url, headers={}, body={})
                messages.append(raised.value.message)
            finally:
                await http.session_for(url).close()
        server.close()
        await server.wait_closed()
        return messages

    messages = asyncio.run(scenario())
    assert messages == [http.UNREACHABLE, http.UNREACHABLE]
