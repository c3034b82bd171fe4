"""Rotating ENCRYPTION_KEY: re-encrypt under the new key, then the old one can go."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from accounts import services
from accounts.crypto import SecretUndecryptable, decrypt_secret
from accounts.models import AuditLogEntry, ProviderCredential
from accounts.selectors import provider_credential_for

pytestmark = pytest.mark.django_db

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
SECRETS = {
    "org-a": "sk-org-a-upstream-secret-1111",
    "org-b": "sk-org-b-upstream-secret-2222",
    None: "sk-platform-upstream-secret-3333",
}


@pytest.fixture
def credentials_under_old_key(settings, org_a, org_b):
    settings.ENCRYPTION_KEYS = [OLD_KEY]
    owners = {"org-a": org_a, "org-b": org_b, None: None}
    for slug, secret in SECRETS.items():
        services.provider_credential_set(
            organization=owners[slug], provider="openai", key=secret, actor=None
        )
    return owners


def decrypted_by_owner() -> dict:
    return {
        credential.organization.slug if credential.organization else None: decrypt_secret(
            credential.encrypted_key
        )
        for credential in ProviderCredential.objects.select_related("organization")
    }


def test_after_rotation_only_the_new_key_is_needed(settings, credentials_under_old_key):
    before = dict(ProviderCredential.objects.values_list("pk", "encrypted_key"))
    settings.ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    output = io.StringIO()
    call_command("rotate_encryption_key", stdout=output)

    assert "re-encrypted 3 secret(s)" in output.getvalue()
    after = dict(ProviderCredential.objects.values_list("pk", "encrypted_key"))
    assert all(after[pk] != before[pk] for pk in before)
    settings.ENCRYPTION_KEYS = [NEW_KEY]
    assert decrypted_by_owner() == SECRETS
    assert AuditLogEntry.objects.filter(event="secrets.reencrypted").exists()


def test_each_organization_still_gets_its_own_key_after_rotation(
    settings, credentials_under_old_key
):
    settings.ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    call_command("rotate_encryption_key", stdout=io.StringIO())
    settings.ENCRYPTION_KEYS = [NEW_KEY]

    for slug in ("org-a", "org-b"):
        organization = credentials_under_old_key[slug]
        credential = provider_credential_for(organization_id=organization.pk, provider="openai")
        assert decrypt_secret(credential.encrypted_key) == SECRETS[slug]


def test_after_rotation_the_old_key_alone_no_longer_decrypts(settings, credentials_under_old_key):
    settings.ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    call_command("rotate_encryption_key", stdout=io.StringIO())

    settings.ENCRYPTION_KEYS = [OLD_KEY]

    for credential in ProviderCredential.objects.all():
        with pytest.raises(SecretUndecryptable):
            decrypt_secret(credential.encrypted_key)


def test_before_rotation_the_new_key_alone_cannot_decrypt(settings, credentials_under_old_key):
    settings.ENCRYPTION_KEYS = [NEW_KEY]

    with pytest.raises(SecretUndecryptable):
        decrypt_secret(ProviderCredential.objects.first().encrypted_key)
    # And the command refuses to run, naming the fix, rather than half-rotating.
    with pytest.raises(CommandError, match="Add the old key"):
        call_command("rotate_encryption_key", stdout=io.StringIO())
    settings.ENCRYPTION_KEYS = [OLD_KEY]
    assert decrypted_by_owner() == SECRETS


def test_a_dry_run_changes_nothing(settings, credentials_under_old_key):
    before = dict(ProviderCredential.objects.values_list("pk", "encrypted_key"))
    settings.ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]

    output = io.StringIO()
    call_command("rotate_encryption_key", dry_run=True, stdout=output)

    assert "would re-encrypt 3" in output.getvalue()
    assert dict(ProviderCredential.objects.values_list("pk", "encrypted_key")) == before
