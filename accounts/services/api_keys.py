"""API keys: created no wider than their parent, revoked, rotated with a grace period."""

from __future__ import annotations

import fnmatch
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import keys
from accounts.models import (
    ApiKey,
    Membership,
    Organization,
    User,
)
from accounts.selectors import principal_cache_forget
from accounts.services.audit import audit_record
from common.errors import InvalidRequest

# The largest limit a PositiveIntegerField holds on every database.
LIMIT_MAX = 2_147_483_647


def limits_check(**limits: int | None) -> None:
    """Requests/tokens per minute: whole numbers from 0 (unlimited) to ``LIMIT_MAX``."""
    for name, value in limits.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LIMIT_MAX:
            raise InvalidRequest(
                f"{name} must be a whole number from 0 (unlimited) to {LIMIT_MAX}.", param=name
            )


def _model_within(name: str, patterns: list[str]) -> bool:
    """A child's model entry is within its parent's list: listed there as written, or a
    plain name one of the parent's patterns matches (a pattern of the child's own could
    match names the parent's do not)."""
    if name in patterns:
        return True
    if set(name) & set("*?[]"):
        return False
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _narrowed_limit(name: str, requested: int | None, parent_value: int | None) -> int | None:
    if not parent_value:  # the parent has no limit of its own here (None or 0 = unlimited)
        return requested
    if requested is None:
        return parent_value
    if requested == 0 or requested > parent_value:
        raise InvalidRequest(
            f"{name} cannot be wider than the key creating it ({parent_value}).", param=name
        )
    return requested


def api_key_narrowed_to_parent(
    *,
    parent: ApiKey,
    expires_at: datetime | None,
    allowed_models: list[str] | None,
    rpm_limit: int | None,
    tpm_limit: int | None,
) -> dict:
    """What a key created by ``parent`` may be: never wider. An unset field inherits the
    parent's value; a wider one is refused, rather than silently narrowed, so the caller
    knows what it got."""
    allowed_models = list(allowed_models or [])
    if parent.allowed_models:
        if not allowed_models:
            allowed_models = list(parent.allowed_models)
        wider = [name for name in allowed_models if not _model_within(name, parent.allowed_models)]
        if wider:
            raise InvalidRequest(
                f"allowed_models cannot be wider than the key creating it: {', '.join(wider)} "
                f"is outside {', '.join(parent.allowed_models)}.",
                param="allowed_models",
            )
    if parent.expires_at is not None:
        if expires_at is None:
            expires_at = parent.expires_at
        elif expires_at > parent.expires_at:
            raise InvalidRequest(
                "expires_at cannot be later than the expiry of the key creating it "
                f"({parent.expires_at.isoformat()}).",
                param="expires_at",
            )
    return {
        "expires_at": expires_at,
        "allowed_models": allowed_models,
        "rpm_limit": _narrowed_limit("rpm_limit", rpm_limit, parent.rpm_limit),
        "tpm_limit": _narrowed_limit("tpm_limit", tpm_limit, parent.tpm_limit),
    }


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    user: User,
    name: str = "",
    expires_at: datetime | None = None,
    allowed_models: list[str] | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    parent: ApiKey | None = None,
    actor: User | None,
) -> tuple[ApiKey, str]:
    """Create a key; the plaintext is returned once and never stored.

    ``parent`` is the key that asked for this one (through the API): the new key is
    narrowed to it (``api_key_narrowed_to_parent``) and lives only as long as it does.
    """
    if not Membership.objects.filter(organization=organization, user=user).exists():
        raise InvalidRequest(f"{user} is not a member of {organization}.")
    limits_check(rpm_limit=rpm_limit, tpm_limit=tpm_limit)
    if parent is not None:
        if parent.organization_id != organization.pk:
            raise InvalidRequest("The parent key belongs to another organization.")
        narrowed = api_key_narrowed_to_parent(
            parent=parent,
            expires_at=expires_at,
            allowed_models=allowed_models,
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
        )
        expires_at = narrowed["expires_at"]
        allowed_models = narrowed["allowed_models"]
        rpm_limit, tpm_limit = narrowed["rpm_limit"], narrowed["tpm_limit"]
    for _attempt in range(5):
        plaintext, lookup = keys.generate_key()
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    organization=organization,
                    user=user,
                    name=name,
                    prefix=lookup,
                    key_hash=keys.hash_key(plaintext),
                    last_four=plaintext[-4:],
                    expires_at=expires_at,
                    allowed_models=allowed_models or [],
                    rpm_limit=rpm_limit,
                    tpm_limit=tpm_limit,
                    parent=parent,
                )
            break
        except IntegrityError:
            continue  # a lookup prefix collision: astronomically rare, draw again
    else:
        raise RuntimeError("could not draw a unique API key prefix")
    details = {"user": user.username, "name": name}
    if parent is not None:
        details["parent"] = parent.masked
    audit_record(
        organization=organization,
        actor=actor,
        event="api_key.created",
        target=api_key,
        details=details,
    )
    return api_key, plaintext


def _descendants(api_key: ApiKey) -> list[ApiKey]:
    found: list[ApiKey] = []
    frontier = [api_key.pk]
    seen = set(frontier)
    while frontier:
        children = list(ApiKey.objects.filter(parent_id__in=frontier).exclude(pk__in=seen))
        found.extend(children)
        frontier = [child.pk for child in children]
        seen.update(frontier)
    return found


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User | None) -> ApiKey:
    """Revoke a key and every key created from it (their lookup refuses them anyway)."""
    now = timezone.now()
    for key in [api_key, *_descendants(api_key)]:
        if key.revoked_at is None:
            key.revoked_at = now
            key.save(update_fields=["revoked_at"])
            audit_record(
                organization=key.organization,
                actor=actor,
                event="api_key.revoked",
                target=key,
                details={"with_parent": api_key.masked} if key is not api_key else {},
            )
    # Other processes notice within API_KEY_CACHE_SECONDS; this one at once.
    principal_cache_forget()
    return api_key


# The longest a rotated key may keep working beside its replacement.
ROTATION_GRACE_MAX_SECONDS = 30 * 24 * 3600


@transaction.atomic
def api_key_rotate(
    *, api_key: ApiKey, actor: User | None, grace_seconds: int = 0
) -> tuple[ApiKey, str]:
    """Replace a key with a new one carrying the same settings.

    With no grace the old key is revoked at once. With ``grace_seconds`` it keeps
    working until then (its expiry is brought forward, never pushed back), so the
    services that hold it can be redeployed one by one; it is refused afterwards like
    any expired key. Keys created from the old key now hang from the new one, so
    rotating a key does not revoke its children.
    """
    if api_key.revoked_at is not None:
        raise InvalidRequest("A revoked key cannot be rotated.")
    if not 0 <= grace_seconds <= ROTATION_GRACE_MAX_SECONDS:
        raise InvalidRequest(
            f"grace_seconds must be between 0 and {ROTATION_GRACE_MAX_SECONDS}.",
            param="grace_seconds",
        )
    new_key, plaintext = api_key_create(
        organization=api_key.organization,
        user=api_key.user,
        name=api_key.name,
        expires_at=api_key.expires_at,
        allowed_models=api_key.allowed_models,
        rpm_limit=api_key.rpm_limit,
        tpm_limit=api_key.tpm_limit,
        parent=api_key.parent,
        actor=actor,
    )
    ApiKey.objects.filter(parent=api_key).update(parent=new_key)
    if grace_seconds:
        grace_ends = timezone.now() + timedelta(seconds=grace_seconds)
        if api_key.expires_at is None or grace_ends < api_key.expires_at:
            api_key.expires_at = grace_ends
            api_key.save(update_fields=["expires_at"])
        principal_cache_forget()
    else:
        api_key_revoke(api_key=api_key, actor=actor)
    audit_record(
        organization=api_key.organization,
        actor=actor,
        event="api_key.rotated",
        target=new_key,
        details={"replaces": api_key.masked, "grace_seconds": grace_seconds},
    )
    return new_key, plaintext


@transaction.atomic
def api_key_update_limits(
    *,
    api_key: ApiKey,
    rpm_limit: int | None,
    tpm_limit: int | None,
    allowed_models: list[str] | None,
    actor: User | None,
) -> ApiKey:
    limits_check(rpm_limit=rpm_limit, tpm_limit=tpm_limit)
    if api_key.parent_id is not None:
        narrowed = api_key_narrowed_to_parent(
            parent=api_key.parent,
            expires_at=api_key.expires_at,
            allowed_models=allowed_models,
            rpm_limit=rpm_limit,
            tpm_limit=tpm_limit,
        )
        allowed_models = narrowed["allowed_models"]
        rpm_limit, tpm_limit = narrowed["rpm_limit"], narrowed["tpm_limit"]
    before = {
        "rpm": api_key.rpm_limit,
        "tpm": api_key.tpm_limit,
        "allowed_models": api_key.allowed_models,
    }
    api_key.rpm_limit = rpm_limit
    api_key.tpm_limit = tpm_limit
    api_key.allowed_models = allowed_models or []
    api_key.save(update_fields=["rpm_limit", "tpm_limit", "allowed_models"])
    audit_record(
        organization=api_key.organization,
        actor=actor,
        event="api_key.limits_changed",
        target=api_key,
        details={
            "before": before,
            "after": {"rpm": rpm_limit, "tpm": tpm_limit, "allowed_models": allowed_models or []},
        },
    )
    principal_cache_forget()
    return api_key


def api_key_expiry(days: int | None) -> datetime | None:
    return timezone.now() + timedelta(days=days) if days else None


def api_key_touch(*, api_key_id: int, used_at: datetime) -> None:
    """Record use, at most once a minute per key, so the hot path never writes per request."""
    ApiKey.objects.filter(pk=api_key_id).exclude(
        last_used_at__gt=used_at - timedelta(minutes=1)
    ).update(last_used_at=used_at)
