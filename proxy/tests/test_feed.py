"""The live request feed: who may watch, and who sees which organization's requests."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts import services
from proxy.feed import feed_drain, feed_publish

# The consumer reads memberships from its own thread: the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

FEED_PATH = "/ws/admin/feed/"


def _event(organization, **overrides) -> dict:
    return {
        "request_id": f"req_test_{organization.slug}",
        "created_at": "2026-01-01T12:00:00+00:00",
        "organization_id": organization.pk,
        "user_id": 99,
        "api_key_id": 98,
        "endpoint": "chat.completions",
        "model": "gpt-4o-mini",
        "status_code": 200,
        "prompt_tokens": 12,
        "completion_tokens": 7,
        "cache": "miss",
        "tokens_saved": 3,
        "latency_ms": 41.5,
        **overrides,
    }


def _session_headers(user) -> list[tuple[bytes, bytes]]:
    """Headers of a browser logged in to the admin as ``user`` (None: anonymous)."""
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return headers


async def _connect(headers) -> tuple[WebsocketCommunicator, bool]:
    # The real ASGI application: origin check, session auth and the URL router included.
    from synthlang_site.asgi import application

    communicator = WebsocketCommunicator(application, FEED_PATH, headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


def _run(coroutine):
    async def with_fresh_layer():
        # A layer object holds connections bound to the event loop that first used it;
        # each test runs its own loop, so it gets its own layer object too.
        channel_layers.backends.clear()
        layer = get_channel_layer()
        # The in-memory layer lives as long as the process. A shared Redis layer is left
        # alone (other processes use it): members left by earlier tests are channels
        # nobody reads, and every assertion here is about what a live socket receives.
        if isinstance(layer, InMemoryChannelLayer):
            await layer.flush()
        return await coroutine

    return asyncio.run(with_fresh_layer())


def test_anonymous_visitor_is_refused(org_a):
    headers = _session_headers(None)

    async def scenario():
        communicator, connected = await _connect(headers)
        await communicator.disconnect()
        return connected

    assert _run(scenario()) is False


def test_basic_member_is_refused(bob):
    headers = _session_headers(bob)

    async def scenario():
        communicator, connected = await _connect(headers)
        await communicator.disconnect()
        return connected

    assert _run(scenario()) is False


def test_organization_admin_sees_only_their_organizations_requests(org_a, org_b, alice, charlie):
    alice_headers, charlie_headers = _session_headers(alice), _session_headers(charlie)

    async def scenario():
        alice_socket, alice_connected = await _connect(alice_headers)
        charlie_socket, charlie_connected = await _connect(charlie_headers)
        assert alice_connected and charlie_connected
        await feed_publish(_event(org_a))
        await feed_drain()
        received = await alice_socket.receive_json_from(timeout=5)
        charlie_got_nothing = await charlie_socket.receive_nothing(timeout=0.5)
        await feed_publish(_event(org_b, request_id="req_for_b"))
        await feed_drain()
        charlie_received = await charlie_socket.receive_json_from(timeout=5)
        alice_got_nothing = await alice_socket.receive_nothing(timeout=0.5)
        await alice_socket.disconnect()
        await charlie_socket.disconnect()
        return received, charlie_got_nothing, charlie_received, alice_got_nothing

    received, charlie_got_nothing, charlie_received, alice_got_nothing = _run(scenario())
    assert received["type"] == "request"
    assert received["event"]["request_id"] == "req_test_org-a"
    assert received["event"]["model"] == "gpt-4o-mini"
    assert received["event"]["prompt_tokens"] == 12
    # Who made the request and with which key is not the feed's to broadcast.
    assert "user_id" not in received["event"] and "api_key_id" not in received["event"]
    assert charlie_got_nothing
    assert charlie_received["event"]["request_id"] == "req_for_b"
    assert alice_got_nothing


def test_platform_staff_see_every_organization_once(org_a, org_b, alice):
    staff = services.user_get_or_create(username="root", email="root@example.com")[0]
    staff.is_staff = staff.is_superuser = True
    staff.save()
    # Staff who also administer an organization must still get each request once.
    services.membership_set(organization=org_a, user=staff, role="admin", actor=None)
    headers = _session_headers(staff)

    async def scenario():
        socket, connected = await _connect(headers)
        assert connected
        await feed_publish(_event(org_a))
        await feed_publish(_event(org_b, request_id="req_for_b"))
        await feed_drain()
        first = await socket.receive_json_from(timeout=5)
        second = await socket.receive_json_from(timeout=5)
        nothing_more = await socket.receive_nothing(timeout=0.5)
        await socket.disconnect()
        return {first["event"]["request_id"], second["event"]["request_id"]}, nothing_more

    seen, nothing_more = _run(scenario())
    assert seen == {"req_test_org-a", "req_for_b"}
    assert nothing_more


def test_demoted_admin_stops_receiving(org_a, alice, monkeypatch):
    from proxy import consumers

    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.0)
    headers = _session_headers(alice)

    async def scenario():
        socket, connected = await _connect(headers)
        assert connected
        from channels.db import database_sync_to_async

        await database_sync_to_async(services.membership_set)(
            organization=org_a, user=alice, role="basic", actor=None
        )
        await feed_publish(_event(org_a))
        await feed_drain()
        output = await socket.receive_output(timeout=5)
        return output

    output = _run(scenario())
    assert output["type"] == "websocket.close"


def test_publishing_without_listeners_or_with_a_broken_layer_never_raises(org_a, monkeypatch):
    from proxy import feed

    class BrokenLayer:
        async def group_send(self, group, message):
            raise ConnectionError("channel layer down")

    async def scenario():
        await feed_publish(_event(org_a))  # nobody listening
        monkeypatch.setattr(feed, "get_channel_layer", lambda: BrokenLayer())
        await feed_publish(_event(org_a))
        await feed_publish({"organization_id": "not a number"})
        await feed_drain()

    _run(scenario())


def test_publishing_to_a_feed_nobody_watches_sends_nothing(org_b, monkeypatch):
    from proxy import feed

    sent = []

    async def record(organization_id, message):
        sent.append(organization_id)

    monkeypatch.setattr(feed, "_send", record)
    feed._watch_forget()

    async def scenario():
        await feed_publish(_event(org_b))
        await feed_drain()
        await feed.feed_watch({feed.organization_group(org_b.pk)})
        await feed_publish(_event(org_b))
        await feed_drain()

    _run(scenario())
    assert sent == [org_b.pk]


def test_with_redis_unreachable_a_page_still_watches_and_this_process_still_publishes(
    org_b, monkeypatch, settings
):
    """The feed's Redis backend keeps its failure policy to itself: a page's mark is not
    an error, and the pages of this process keep receiving through the outage."""
    from common.redis import redis_clients_forget
    from proxy import feed

    settings.CACHE_TYPE = "redis"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.REDIS_RETRY_SECONDS = 60
    redis_clients_forget()
    assert isinstance(feed.watching(), feed.RedisWatching)
    sent = []

    async def record(organization_id, message):
        sent.append(organization_id)

    monkeypatch.setattr(feed, "_send", record)

    async def scenario():
        await feed.feed_watch({feed.organization_group(org_b.pk)})
        await feed_publish(_event(org_b))
        await feed_drain()

    try:
        _run(scenario())
    finally:
        redis_clients_forget()
    assert sent == [org_b.pk]
