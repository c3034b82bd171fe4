"""Guessing is stopped: admin passwords per account and per address, API keys per address."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from accounts import throttle
from billing.tests.conftest import REAL_REDIS_URL

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN = "/admin/login/?next=/admin/"


def _sign_in(username: str, password: str, address: str = "203.0.113.9"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": username, "password": password})
    signed_in = "_auth_user_id" in client.session
    return response, signed_in


def test_the_right_password_after_many_wrong_ones_is_refused(alice):
    for _ in range(50):
        _response, signed_in = _sign_in("alice", "not-her-password")
        assert not signed_in
    response, signed_in = _sign_in("alice", "alice-password-1")
    assert not signed_in
    assert response.status_code == 429


def test_an_account_is_locked_whatever_address_the_guesses_come_from(alice, settings):
    for index in range(settings.AXES_FAILURE_LIMIT):
        _sign_in("alice", "wrong", address=f"198.51.100.{index + 1}")
    _response, signed_in = _sign_in("alice", "alice-password-1", address="192.0.2.200")
    assert not signed_in


def test_an_address_is_locked_whatever_accounts_it_guesses(alice, charlie, settings):
    for index in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(f"nobody-{index}", "wrong", address="198.51.100.77")
    _response, signed_in = _sign_in("charlie", "charlie-password-1", address="198.51.100.77")
    assert not signed_in
    _response, signed_in = _sign_in("charlie", "charlie-password-1", address="198.51.100.78")
    assert signed_in


def test_a_few_mistakes_then_the_right_password_still_sign_in(alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in("alice", "typo")
    _response, signed_in = _sign_in("alice", "alice-password-1")
    assert signed_in


# --- API keys --------------------------------------------------------------------------


@pytest.fixture
def low_limit(settings):
    settings.KEY_LOOKUP_FAILURE_LIMIT = 5
    settings.KEY_LOOKUP_FAILURE_WINDOW_SECONDS = 300
    throttle.key_lookup_throttle_forget()
    yield settings
    throttle.key_lookup_throttle_forget()


class _ClientAt(AsyncClient):
    """An async test client whose connection comes from ``address`` (the ASGI scope's
    client, which becomes REMOTE_ADDR)."""

    def __init__(self, address: str):
        super().__init__()
        self._address = address

    def _base_scope(self, **request):
        scope = super()._base_scope(**request)
        scope["client"] = [self._address, 50000]
        return scope


def _models(key: str, address: str = "203.0.113.50", forwarded: str = ""):
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded:
        headers["X-Forwarded-For"] = forwarded

    async def get():
        return await _ClientAt(address).get("/v1/models", headers=headers)

    return async_to_sync(get)()


def _guess(index: int) -> str:
    return f"sk-syn-guess{index:04d}{'x' * 30}"


def test_an_address_that_keeps_sending_wrong_keys_gets_429(low_limit, alice_key):
    statuses = [_models(_guess(i)).status_code for i in range(5)]
    assert statuses == [401] * 5

    refused = _models(alice_key)  # even a valid key, from that address, for the window
    assert refused.status_code == 429
    error = json.loads(refused.content)["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert 0 < int(refused["Retry-After"]) <= 300
    assert _models(alice_key, address="203.0.113.51").status_code == 200


def test_the_management_api_counts_the_same_failures(low_limit, alice_key):
    client = Client(REMOTE_ADDR="203.0.113.60")
    for index in range(5):
        response = client.get("/api/keys/", HTTP_AUTHORIZATION=f"Bearer {_guess(index)}")
        assert response.status_code == 401
    response = client.get("/api/keys/", HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    assert response.status_code == 429


def test_a_forged_x_forwarded_for_does_not_escape_the_block(low_limit, alice_key):
    for index in range(5):
        _models(_guess(index), forwarded=f"192.0.2.{index}")
    assert _models(alice_key, forwarded="192.0.2.99").status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(low_limit, alice_key):
    low_limit.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for index in range(5):
        # The leftmost entry is the client's own (forgeable) claim; the proxy appended
        # the address it saw.
        _models(_guess(index), address="10.0.0.2", forwarded=f"1.1.1.{index}, 198.51.100.5")
    assert _models(alice_key, address="10.0.0.2", forwarded="198.51.100.5").status_code == 429
    assert _models(alice_key, address="10.0.0.2", forwarded="198.51.100.6").status_code == 200


def test_with_redis_down_the_process_still_counts(low_limit, alice_key):
    low_limit.CACHE_TYPE = "redis"
    low_limit.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    async def run():
        for _ in range(5):
            await throttle.afailure_record("203.0.113.70")

    asyncio.run(run())
    assert throttle.counters.blocked_for("203.0.113.70") > 0


@pytest.mark.skipif(not REAL_REDIS_URL, reason="the shared count needs a real Redis")
def test_instances_share_the_count_through_redis(low_limit):
    for _ in range(5):
        throttle.failure_record("203.0.113.80")
    assert throttle.counters.blocked_for("203.0.113.80") > 0
    throttle.counters.clear()  # another instance: it has blocked nobody yet
    throttle.failure_record("203.0.113.80")  # one more guess reaches it
    assert throttle.counters.blocked_for("203.0.113.80") > 0
