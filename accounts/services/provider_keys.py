"""Provider credentials, stored encrypted and never returned."""

from __future__ import annotations

import re

from django.db import transaction

from accounts.crypto import encrypt_secret, reencrypt_secret
from accounts.models import (
    Organization,
    ProviderCredential,
    User,
)
from accounts.services.audit import audit_record
from common.errors import InvalidRequest
from common.outbound import url_problem


@transaction.atomic
def provider_credential_set(
    *,
    organization: Organization | None,
    provider: str,
    key: str,
    base_url: str = "",
    name: str = "default",
    options: dict | None = None,
    actor: User | None,
) -> ProviderCredential:
    """Store (or replace) an upstream key, encrypted; only its last four stay readable."""
    if not key:
        raise InvalidRequest("The provider key is empty.")
    provider_settings_check(base_url=base_url, options=options)
    credential, created = ProviderCredential.objects.select_for_update().get_or_create(
        organization=organization,
        provider=provider,
        name=name,
        defaults={"encrypted_key": "", "last_four": ""},
    )
    credential.encrypted_key = encrypt_secret(key)
    credential.last_four = key[-4:]
    credential.base_url = base_url
    credential.options = options or {}
    credential.save()
    audit_record(
        organization=organization,
        actor=actor,
        event="provider_key.created" if created else "provider_key.replaced",
        target=credential,
        details={"provider": provider, "base_url": base_url},
    )
    return credential


@transaction.atomic
def provider_credential_update(
    *,
    credential: ProviderCredential,
    base_url: str,
    options: dict | None = None,
    actor: User | None,
) -> ProviderCredential:
    """Change where and how a stored key is used, keeping the key itself."""
    provider_settings_check(base_url=base_url, options=options)
    before = {"base_url": credential.base_url, "options": credential.options}
    credential.base_url = base_url
    credential.options = options or {}
    credential.save(update_fields=["base_url", "options", "updated_at"])
    audit_record(
        organization=credential.organization,
        actor=actor,
        event="provider_key.settings_changed",
        target=credential,
        details={"before": before, "after": {"base_url": base_url, "options": options or {}}},
    )
    return credential


# Azure's api-version goes into the query string the provider builds; a date, optionally
# "-preview", is all it ever is, so nothing else can ride along in it.
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def provider_settings_check(*, base_url: str, options: dict | None) -> None:
    """Where a credential may send requests: the outbound policy (common/outbound.py)."""
    if base_url:
        problem = url_problem(base_url)
        if problem:
            raise InvalidRequest(f"base_url: {problem}", param="base_url")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("options must be a JSON object.", param="options")
    api_version = (options or {}).get("api_version")
    if api_version is not None and not (
        isinstance(api_version, str) and _API_VERSION.match(api_version)
    ):
        raise InvalidRequest(
            "options.api_version must be a date such as 2024-10-21 (optionally -preview).",
            param="options",
        )


@transaction.atomic
def provider_credential_delete(*, credential: ProviderCredential, actor: User | None) -> None:
    audit_record(
        organization=credential.organization,
        actor=actor,
        event="provider_key.deleted",
        target=credential,
    )
    credential.delete()


@transaction.atomic
def secrets_reencrypt(*, actor: User | None = None, dry_run: bool = False) -> int:
    """Re-encrypt every stored secret under the first key of ENCRYPTION_KEY."""
    count = 0
    for credential in ProviderCredential.objects.select_for_update().order_by("pk"):
        if not dry_run:
            credential.encrypted_key = reencrypt_secret(credential.encrypted_key)
            credential.save(update_fields=["encrypted_key", "updated_at"])
        count += 1
    if not dry_run:
        audit_record(
            organization=None, actor=actor, event="secrets.reencrypted", details={"count": count}
        )
    return count
