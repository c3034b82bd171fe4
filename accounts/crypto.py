"""Encryption of secrets at rest (provider keys) with the keys in ENCRYPTION_KEY."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from common.errors import DomainError


class SecretUndecryptable(DomainError):
    code = "server_error"
    message = "A stored secret cannot be decrypted with any key in ENCRYPTION_KEY."


@lru_cache(maxsize=1)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    # The first key encrypts; all of them decrypt (rotation).
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


@receiver(setting_changed)
def _forget_keys(*, setting, **kwargs):
    if setting == "ENCRYPTION_KEYS":
        _fernet.cache_clear()


def encrypt_secret(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUndecryptable() from None


def reencrypt_secret(token: str) -> str:
    """The same secret, encrypted under the first key."""
    try:
        return fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUndecryptable() from None
