"""API keys: their shape, how they are stored and checked, and how fast revocation bites."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import keys, services
from accounts.models import ApiKey
from accounts.selectors import principal_for_key

pytestmark = pytest.mark.django_db

KEYS_URL = "/api/keys/"


def key_of(plaintext: str) -> ApiKey:
    return ApiKey.objects.get(prefix=keys.lookup_prefix(plaintext))


def client_with(header: str, plaintext: str) -> APIClient:
    client = APIClient()
    if header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    else:
        client.credentials(HTTP_X_API_KEY=plaintext)
    return client


def assert_invalid_api_key(response):
    assert response.status_code == 401, response.content
    assert response.json() == {
        "error": {
            "message": response.json()["error"]["message"],
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


# --- Shape and storage ---------------------------------------------------------------------


def test_keys_look_like_sk_syn_followed_by_48_letters_and_digits(alice_key):
    assert alice_key.startswith("sk-syn-")
    body = alice_key[len("sk-syn-") :]
    assert len(body) == 48 and body.isalnum() and body.isascii()


def test_keys_are_random(org_a, alice):
    drawn = {
        services.api_key_create(organization=org_a, user=alice, actor=None)[1] for _ in range(20)
    }
    assert len(drawn) == 20
    assert len({keys.lookup_prefix(key) for key in drawn}) == 20


def test_only_an_hmac_of_the_key_is_stored_under_a_pepper(alice_key, settings):
    api_key = key_of(alice_key)
    pepper = hmac.new(
        settings.API_KEY_PEPPER.encode(), b"synthlang-api-key-pepper-v1", hashlib.sha256
    ).digest()

    assert api_key.key_hash == hmac.new(pepper, alice_key.encode(), hashlib.sha256).hexdigest()
    assert api_key.key_hash != hashlib.sha256(alice_key.encode()).hexdigest()
    stored = " ".join(
        str(value) for value in ApiKey.objects.filter(pk=api_key.pk).values().get().values()
    )
    assert alice_key not in stored
    assert alice_key[len("sk-syn-") + 8 : -4] not in stored  # not even the secret's middle


def test_the_stored_hash_depends_on_the_configured_pepper(alice_key, settings):
    original = keys.hash_key(alice_key)

    settings.API_KEY_PEPPER = "another-pepper"

    assert keys.hash_key(alice_key) != original
    assert not keys.key_matches(alice_key, key_of(alice_key).key_hash)


def test_keys_are_found_by_their_lookup_prefix(alice_key):
    api_key = key_of(alice_key)

    assert api_key.prefix == alice_key[len("sk-syn-") : len("sk-syn-") + 8]
    assert api_key.last_four == alice_key[-4:]
    assert api_key.masked == f"sk-syn-{api_key.prefix}…{alice_key[-4:]}"


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "sk-syn-",
        "sk-abc",
        "sk-syn-short",
        "Bearer sk-syn-" + "a" * 48,
        "sk-syn-" + "a" * 47 + "!",
    ],
)
def test_malformed_keys_have_no_lookup_prefix(malformed):
    assert keys.lookup_prefix(malformed) is None


def test_keys_are_compared_in_constant_time(alice_key, monkeypatch):
    # Timing cannot be measured reliably in a test; what can be checked is that the
    # comparison goes through hmac.compare_digest and gives the right answers.
    compared = []
    real_compare = hmac.compare_digest

    def recording_compare(a, b):
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", recording_compare)
    stored = key_of(alice_key).key_hash
    forged = alice_key[:-1] + ("A" if alice_key[-1] != "A" else "B")

    assert keys.key_matches(alice_key, stored) is True
    assert keys.key_matches(forged, stored) is False
    assert len(compared) == 2 and all(b == stored for _, b in compared)


def test_the_plaintext_is_returned_once_at_creation_and_never_readable_again(org_a, alice):
    api_key, plaintext = services.api_key_create(organization=org_a, user=alice, actor=alice)

    reloaded = ApiKey.objects.get(pk=api_key.pk)
    assert plaintext not in {str(getattr(reloaded, f.attname)) for f in ApiKey._meta.fields}
    assert not hasattr(reloaded, "plaintext")


# --- Rejections in OpenAI's format -----------------------------------------------------


@pytest.fixture
def rejected_keys(org_a, alice, alice_key):
    expired, expired_plain = services.api_key_create(
        organization=org_a, user=alice, expires_at=timezone.now() + timedelta(days=1), actor=None
    )
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked, revoked_plain = services.api_key_create(organization=org_a, user=alice, actor=None)
    services.api_key_revoke(api_key=revoked, actor=None)
    unknown = "sk-syn-" + "Z" * 48
    # A real key's prefix with a wrong secret: found by prefix, refused by the hash.
    forged = alice_key[:-4] + ("AAAA" if alice_key[-4:] != "AAAA" else "BBBB")
    return {
        "expired": expired_plain,
        "revoked": revoked_plain,
        "unknown": unknown,
        "forged": forged,
        "malformed": "not-a-key",
    }


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
@pytest.mark.parametrize("state", ["expired", "revoked", "unknown", "forged", "malformed"])
def test_bad_keys_get_401_in_openai_format(rejected_keys, header, state):
    response = client_with(header, rejected_keys[state]).get(KEYS_URL)

    assert_invalid_api_key(response)
    assert rejected_keys[state] not in response.content.decode()


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_a_good_key_is_accepted_in_either_header(alice_key, header):
    assert client_with(header, alice_key).get(KEYS_URL).status_code == 200


def test_the_rejection_says_why(rejected_keys):
    messages = {
        state: client_with("bearer", rejected_keys[state]).get(KEYS_URL).json()["error"]["message"]
        for state in ("expired", "revoked", "unknown")
    }
    assert "expired" in messages["expired"]
    assert "revoked" in messages["revoked"]
    assert "Incorrect API key" in messages["unknown"]


def test_a_missing_key_gets_401(db):
    response = APIClient().get(KEYS_URL)

    assert_invalid_api_key(response)


def test_a_removed_members_key_stops_working(alice_client, bob, bob_key, org_a):
    from accounts.models import Membership

    services.membership_remove(
        membership=Membership.objects.get(user=bob, organization=org_a), actor=None
    )

    assert_invalid_api_key(client_with("bearer", bob_key).get(KEYS_URL))


# --- The cache and the revocation bound ---------------------------------------------------


def test_a_warm_key_is_resolved_without_any_query(alice_key, django_assert_num_queries):
    principal_for_key(alice_key)  # warms this process's cache

    with django_assert_num_queries(0):
        principal = principal_for_key(alice_key)

    assert principal.username == "alice"


def test_a_key_revoked_elsewhere_stops_working_within_the_cache_bound(alice_key, settings):
    settings.API_KEY_CACHE_SECONDS = 1
    client = client_with("bearer", alice_key)
    assert client.get(KEYS_URL).status_code == 200  # cached now
    cached_at = time.monotonic()

    # Another process revokes it: the database changes, this process's cache does not.
    ApiKey.objects.filter(pk=key_of(alice_key).pk).update(revoked_at=timezone.now())

    assert client.get(KEYS_URL).status_code == 200, "still trusted from the cache"
    time.sleep(max(0.0, cached_at + settings.API_KEY_CACHE_SECONDS - time.monotonic()) + 0.05)
    assert_invalid_api_key(client.get(KEYS_URL))


def test_revoking_in_this_process_takes_effect_at_once(alice_key, alice):
    client = client_with("bearer", alice_key)
    assert client.get(KEYS_URL).status_code == 200

    services.api_key_revoke(api_key=key_of(alice_key), actor=alice)

    assert_invalid_api_key(client.get(KEYS_URL))


def test_the_documented_bound_is_a_few_seconds(settings):
    assert 0 < settings.API_KEY_CACHE_SECONDS <= 5
