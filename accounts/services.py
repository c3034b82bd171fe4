"""Every write to accounts data goes through here, and every one leaves an audit entry."""

from __future__ import annotations

import fnmatch
import logging
import re
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts import keys
from accounts.crypto import encrypt_secret, reencrypt_secret
from accounts.models import (
    ApiKey,
    AuditLogEntry,
    CacheScope,
    Membership,
    Organization,
    ProviderCredential,
    Role,
    RoleLimit,
    User,
)
from accounts.permissions import ORGANIZATION_ADMINS_GROUP
from accounts.selectors import principal_cache_forget
from common.errors import InvalidRequest, PermissionDenied
from common.outbound import url_problem

logger = logging.getLogger(__name__)


def _describe(target) -> dict:
    if target is None:
        return {}
    return {
        "target_type": target._meta.label_lower,
        "target_id": str(target.pk),
        "target_repr": str(target)[:200],
    }


def audit_record(
    *,
    organization: Organization | None,
    actor: User | None,
    event: str,
    target=None,
    details: dict | None = None,
) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        organization=organization,
        actor=actor if actor is not None and actor.pk else None,
        event=event,
        details=details or {},
        **_describe(target),
    )


@transaction.atomic
def organization_create(*, name: str, slug: str = "", actor: User | None = None) -> Organization:
    slug = slug or slugify(name)[:100]
    if not slug:
        raise InvalidRequest("The organization needs a slug (letters, digits, hyphens).")
    if Organization.objects.filter(slug=slug).exists():
        raise InvalidRequest(f"An organization with the slug {slug!r} exists.", param="slug")
    organization = Organization.objects.create(name=name, slug=slug)
    audit_record(
        organization=organization, actor=actor, event="organization.created", target=organization
    )
    return organization


# What an organization's admins may change about it (the rest is platform staff's).
ORGANIZATION_SETTINGS = frozenset(
    {
        "name",
        "rpm_limit",
        "tpm_limit",
        "allowed_models",
        "compression_level",
        "compression_roles",
        "compression_tool_results",
        "cache_enabled",
        "cache_scope",
        "prompt_cache_breakpoints",
        "prompt_cache_key_scope",
        "trace_content",
    }
)


@transaction.atomic
def organization_update_settings(
    *, organization: Organization, actor: User | None, **changes
) -> Organization:
    unknown = set(changes) - ORGANIZATION_SETTINGS
    if unknown:
        raise InvalidRequest(f"Unknown organization settings: {', '.join(sorted(unknown))}")
    if (
        changes.get("cache_scope") == CacheScope.PLATFORM
        and organization.cache_scope != CacheScope.PLATFORM
        and not (actor is None or actor.is_superuser)
    ):
        # Sharing cached answers with other tenants is the platform's decision (what one
        # tenant's answers may reach another), never an organization admin's.
        raise PermissionDenied("Only platform staff can share an organization's cache.")
    before = {field: getattr(organization, field) for field in changes}
    for field, value in changes.items():
        setattr(organization, field, value)
    organization.full_clean()
    organization.save(update_fields=list(changes))
    audit_record(
        organization=organization,
        actor=actor,
        event="organization.settings_changed",
        target=organization,
        details={"before": before, "after": changes},
    )
    principal_cache_forget()
    return organization


@transaction.atomic
def organization_delete(*, organization: Organization, actor: User | None) -> None:
    """Delete an organization with its members, keys and credentials (platform staff only)."""
    admins = list(
        User.objects.filter(memberships__organization=organization, memberships__role=Role.ADMIN)
    )
    audit_record(
        organization=None,
        actor=actor,
        event="organization.deleted",
        target=organization,
        details={"slug": organization.slug},
    )
    organization.delete()
    for user in admins:
        _staff_access_sync(user=user, actor=actor)
    principal_cache_forget()


def user_get_or_create(*, username: str, email: str = "") -> tuple[User, bool]:
    user, created = User.objects.get_or_create(username=username, defaults={"email": email})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user, created


@transaction.atomic
def membership_set(
    *, organization: Organization, user: User, role: str | None = None, actor: User | None
) -> Membership:
    """Add ``user`` to ``organization`` or change their role. New members get DEFAULT_ROLE."""
    role = role or settings.DEFAULT_ROLE
    if role not in Role.values:
        raise InvalidRequest(f"Unknown role {role!r}; expected one of {', '.join(Role.values)}.")
    membership, created = Membership.objects.select_for_update().get_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    if created:
        audit_record(
            organization=organization,
            actor=actor,
            event="member.added",
            target=membership,
            details={"role": role},
        )
        _staff_access_sync(user=user, actor=actor)
    elif membership.role != role:
        previous = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            organization=organization,
            actor=actor,
            event="member.role_changed",
            target=membership,
            details={"before": previous, "after": role},
        )
        _staff_access_sync(user=user, actor=actor)
        principal_cache_forget()
    return membership


def _staff_access_sync(*, user: User, actor: User | None) -> None:
    """Admin of at least one organization <=> may sign in to the admin site.

    ``is_staff`` only opens the door; the group's model permissions say which pages
    exist and ``accounts.admin_scoping`` which rows show. Superusers keep their access
    whatever their memberships.
    """
    group, _ = Group.objects.get_or_create(name=ORGANIZATION_ADMINS_GROUP)
    administers = Membership.objects.filter(user=user, role=Role.ADMIN).exists()
    if administers:
        user.groups.add(group)
    else:
        user.groups.remove(group)
    is_staff = administers or user.is_superuser
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])
        audit_record(
            organization=None,
            actor=actor,
            event="user.staff_granted" if is_staff else "user.staff_revoked",
            target=user,
        )


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User | None) -> None:
    audit_record(
        organization=membership.organization,
        actor=actor,
        event="member.removed",
        target=membership,
        details={"role": membership.role},
    )
    ApiKey.objects.filter(
        organization=membership.organization, user=membership.user, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    membership.delete()
    _staff_access_sync(user=membership.user, actor=actor)
    principal_cache_forget()


def _last_admin_check(membership: Membership, *, leaving: str) -> None:
    if membership.role != Role.ADMIN:
        return
    admins = Membership.objects.select_for_update().filter(
        organization=membership.organization, role=Role.ADMIN
    )
    if not admins.exclude(pk=membership.pk).exists():
        raise InvalidRequest(f"The organization's last admin cannot be {leaving}.")


@transaction.atomic
def member_role_change(*, membership: Membership, role: str, actor: User | None) -> Membership:
    """A member's new role; the organization keeps at least one admin."""
    if role != Role.ADMIN:
        _last_admin_check(membership, leaving="demoted")
    return membership_set(
        organization=membership.organization, user=membership.user, role=role, actor=actor
    )


@transaction.atomic
def member_remove(*, membership: Membership, actor: User | None) -> None:
    """Remove a member (their keys are revoked); the organization keeps at least one admin."""
    _last_admin_check(membership, leaving="removed")
    membership_remove(membership=membership, actor=actor)


@transaction.atomic
def member_add(
    *,
    organization: Organization,
    username: str,
    email: str = "",
    role: str | None = None,
    actor: User | None,
) -> Membership:
    """Add a user (created without a password if new) to an organization."""
    user, created = user_get_or_create(username=username, email=email)
    if created:
        audit_record(organization=organization, actor=actor, event="user.created", target=user)
    return membership_set(organization=organization, user=user, role=role, actor=actor)


@transaction.atomic
def role_limit_set(
    *,
    organization: Organization,
    role: str,
    rpm_limit: int | None,
    tpm_limit: int | None,
    allowed_models: list[str] | None = None,
    actor: User | None,
) -> RoleLimit:
    limits_check(rpm_limit=rpm_limit, tpm_limit=tpm_limit)
    limit, _ = RoleLimit.objects.update_or_create(
        organization=organization,
        role=role,
        defaults={
            "rpm_limit": rpm_limit,
            "tpm_limit": tpm_limit,
            "allowed_models": allowed_models or [],
        },
    )
    audit_record(
        organization=organization,
        actor=actor,
        event="limits.role_changed",
        target=limit,
        details={
            "role": role,
            "rpm": rpm_limit,
            "tpm": tpm_limit,
            "allowed_models": allowed_models or [],
        },
    )
    principal_cache_forget()
    return limit


@transaction.atomic
def role_limit_delete(*, role_limit: RoleLimit, actor: User | None) -> None:
    """Drop an override: the role's defaults from the environment apply again."""
    audit_record(
        organization=role_limit.organization,
        actor=actor,
        event="limits.role_reset",
        target=role_limit,
        details={"role": role_limit.role},
    )
    role_limit.delete()
    principal_cache_forget()


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


def roles_apply_from_settings() -> int:
    """Give the users named in ADMIN_USERS / PREMIUM_USERS their role in every membership.

    Admin users become staff through ``membership_set``, so they can sign in to the admin.
    """
    changed = 0
    for role, usernames in (
        (Role.PREMIUM, settings.PREMIUM_USERS),
        (Role.ADMIN, settings.ADMIN_USERS),
    ):
        for username in usernames:
            user = User.objects.filter(username=username).first()
            if user is None:
                logger.info("role bootstrap: no user named %s yet", username)
                continue
            for membership in user.memberships.select_related("organization"):
                if membership.role == role or (
                    role == Role.PREMIUM and username in settings.ADMIN_USERS
                ):
                    continue
                membership_set(
                    organization=membership.organization, user=user, role=role, actor=None
                )
                changed += 1
    return changed
