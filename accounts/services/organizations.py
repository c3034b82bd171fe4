"""Organizations, members and role limits."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import (
    ApiKey,
    CacheScope,
    Membership,
    Organization,
    Role,
    RoleLimit,
    User,
)
from accounts.permissions import ORGANIZATION_ADMINS_GROUP
from accounts.selectors import principal_cache_forget
from accounts.services.api_keys import limits_check
from accounts.services.audit import audit_record
from common.errors import InvalidRequest, PermissionDenied

logger = logging.getLogger(__name__)


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
