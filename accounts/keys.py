"""API key material: generation, hashing and constant-time comparison. No ORM here."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from functools import lru_cache

from django.conf import settings

KEY_PREFIX = "sk-syn-"
LOOKUP_LENGTH = 8
SECRET_LENGTH = 40
# Letters and digits only: the whole key selects with a double click and survives
# any shell or header quoting.
_ALPHABET = string.ascii_letters + string.digits


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def generate_key() -> tuple[str, str]:
    """A new key and its lookup prefix: ``sk-syn-<lookup><secret>``."""
    lookup = _random(LOOKUP_LENGTH)
    return f"{KEY_PREFIX}{lookup}{_random(SECRET_LENGTH)}", lookup


def lookup_prefix(raw_key: str) -> str | None:
    """The lookup part of a well-formed key, or None for anything else."""
    if not raw_key.startswith(KEY_PREFIX):
        return None
    body = raw_key[len(KEY_PREFIX) :]
    if len(body) != LOOKUP_LENGTH + SECRET_LENGTH or not body.isalnum():
        return None
    return body[:LOOKUP_LENGTH]


@lru_cache(maxsize=4)
def _pepper_from(configured: str) -> bytes:
    # A dedicated key for API-key hashes, derived so it never equals SECRET_KEY itself.
    return hmac.new(configured.encode(), b"synthlang-api-key-pepper-v1", hashlib.sha256).digest()


def _pepper() -> bytes:
    return _pepper_from(settings.API_KEY_PEPPER)


def hash_key(raw_key: str) -> str:
    return hmac.new(_pepper(), raw_key.encode(), hashlib.sha256).hexdigest()


def key_matches(raw_key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(raw_key), stored_hash)
