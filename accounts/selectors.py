"""Reads of accounts data, always scoped to an organization, and the hot-path key lookup."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from accounts import keys
from accounts.models import (
    ApiKey,
    Membership,
    Organization,
    ProviderCredential,
    Role,
    RoleLimit,
    User,
)
from common.db import run_in_db_thread
from common.errors import DomainError, InvalidRequest, NotFound
from common.local_state import local_state_register
from common.outages import DATABASE_ERRORS
from common.outages import refusal as outage_refusal
from common.ttlcache import TTLCache


class ApiKeyInvalid(DomainError):
    code = "invalid_api_key"
    message = "Incorrect API key provided. You can find your API key in the admin site."


class ApiKeyMissing(DomainError):
    code = "invalid_api_key"
    message = (
        "You didn't provide an API key. Send it as 'Authorization: Bearer sk-syn-...' "
        "or in the 'x-api-key' header."
    )


class ApiKeyRevoked(DomainError):
    code = "invalid_api_key"
    message = "This API key has been revoked."


class ApiKeyExpired(DomainError):
    code = "invalid_api_key"
    message = "This API key has expired."


class ModelNotAllowed(DomainError):
    code = "model_not_allowed"
    message = "This API key is not allowed to use that model."


@dataclass(frozen=True)
class RateLimit:
    """Requests and tokens per minute; 0 means unlimited."""

    rpm: int
    tpm: int


@dataclass(frozen=True)
class Principal:
    """Everything the proxy needs to know about the caller, resolved from one API key."""

    key_id: int | None  # None: the organization's own call (background work), no key
    key_prefix: str
    organization_id: int
    organization_slug: str
    user_id: int | None  # None with ``key_id``: no member made the call
    username: str
    role: str
    expires_at: datetime | None
    # Each non-empty list restricts the models; a model must pass all of them.
    model_rules: tuple[tuple[str, ...], ...] = ()
    key_limit: RateLimit | None = None
    member_limit: RateLimit | None = None
    organization_limit: RateLimit | None = None
    compression_level: str = ""
    compression_roles: tuple[str, ...] = ("system", "user")
    compression_tool_results: bool = True
    cache_enabled: bool = True
    cache_scope: str = "organization"
    prompt_cache_breakpoints: bool = True
    prompt_cache_key_scope: str = "organization"

    def may_use_model(self, model: str) -> bool:
        return all(
            any(fnmatch.fnmatchcase(model, pattern) for pattern in rule)
            for rule in self.model_rules
        )

    def check_model(self, model: str) -> None:
        if not self.may_use_model(model):
            raise ModelNotAllowed(
                f"This API key is not allowed to use the model '{model}'.", param="model"
            )


# --- Tenant-scoped reads -------------------------------------------------------------


def organizations_for_user(*, user) -> QuerySet[Organization]:
    if user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user).distinct()


def organizations_administered_by(*, user) -> QuerySet[Organization]:
    if user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user, memberships__role="admin")


def api_keys_for_org(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.for_org(organization).select_related("user")


def api_key_get_for_org(*, organization: Organization, key_id) -> ApiKey:
    """An organization's key by id; anyone else's key is indistinguishable from none."""
    key = api_keys_for_org(organization=organization).filter(pk=key_id).first()
    if key is None:
        raise NotFound("No such API key.")
    return key


@dataclass(frozen=True)
class OrganizationCaller:
    """Who is calling the management API, in which organization, with which role."""

    organization: Organization
    user: User
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def organization_caller_get(
    *, user: User, principal: Principal | None, organization_slug: str = ""
) -> OrganizationCaller:
    """The caller's organization: the API key's, or the one a signed-in user names.

    The role is read from the database rather than the cached Principal, so a
    demotion applies to management calls at once.
    """
    if principal is not None and (
        not organization_slug or organization_slug == principal.organization_slug
    ):
        organization = Organization.objects.get(pk=principal.organization_id)
    elif principal is not None and not user.is_superuser:
        raise NotFound("No such organization.", param="organization")
    elif principal is not None:
        # Platform staff's key names any organization, as staff do in the admin: how a
        # new organization is set up through the API alone.
        organization = Organization.objects.filter(slug=organization_slug).first()
        if organization is None:
            raise NotFound("No such organization.", param="organization")
    elif organization_slug:
        organization = organizations_for_user(user=user).filter(slug=organization_slug).first()
        if organization is None:
            raise NotFound("No such organization.", param="organization")
    else:
        candidates = list(organizations_for_user(user=user)[:2])
        if len(candidates) != 1:
            raise InvalidRequest(
                "Name the organization with the 'organization' query parameter (its slug).",
                param="organization",
            )
        organization = candidates[0]
    membership = membership_for(organization=organization, user=user)
    if membership is not None:
        role = membership.role
    elif user.is_superuser:
        role = Role.ADMIN  # platform staff act as an admin of any organization
    else:
        raise NotFound("No such organization.", param="organization")
    return OrganizationCaller(organization=organization, user=user, role=role)


def api_keys_manageable_by(*, caller: OrganizationCaller) -> QuerySet[ApiKey]:
    """Admins manage every key of their organization; members their own only."""
    api_keys = api_keys_for_org(organization=caller.organization)
    return api_keys if caller.is_admin else api_keys.filter(user=caller.user)


def api_key_get_manageable(*, caller: OrganizationCaller, key_id) -> ApiKey:
    """A key the caller may manage; any other key, here or elsewhere, does not exist."""
    api_key = api_keys_manageable_by(caller=caller).filter(pk=key_id).first()
    if api_key is None:
        raise NotFound("No such API key.")
    return api_key


def members_for_org(*, organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user")


def membership_for(*, organization: Organization, user) -> Membership | None:
    return Membership.objects.filter(organization=organization, user=user).first()


def provider_credential_for(
    *, organization_id: int | None, provider: str, name: str = "default"
) -> ProviderCredential | None:
    """The organization's own credential for a provider, else the platform's."""
    if organization_id is not None:
        own = ProviderCredential.objects.filter(
            organization_id=organization_id, provider=provider, name=name
        ).first()
        if own is not None:
            return own
    return ProviderCredential.objects.platform().filter(provider=provider, name=name).first()


# --- The hot path: API key -> Principal, cached per process ---------------------------

# hash of the key -> Principal, or the error to raise for that key
_principal_cache: TTLCache[Principal | DomainError] = TTLCache(max_entries=100_000)


def principal_cache_forget() -> None:
    """Drop this process's cached keys (other processes expire theirs on their own)."""
    _principal_cache.clear()


local_state_register("accounts:principals", principal_cache_forget, redis_twin=False)


def _limit(rpm: int | None, tpm: int | None, fallback: RateLimit | None) -> RateLimit | None:
    if rpm is None and tpm is None:
        return fallback
    return RateLimit(
        rpm=rpm if rpm is not None else (fallback.rpm if fallback else 0),
        tpm=tpm if tpm is not None else (fallback.tpm if fallback else 0),
    )


def _principal_from_db(raw_key: str, key_hash: str) -> Principal | DomainError:
    prefix = keys.lookup_prefix(raw_key)
    if prefix is None:
        return ApiKeyInvalid()
    api_key = ApiKey.objects.select_related("organization", "user").filter(prefix=prefix).first()
    if api_key is None or not keys.key_matches(raw_key, api_key.key_hash):
        return ApiKeyInvalid()
    if api_key.revoked_at is not None:
        return ApiKeyRevoked()
    expires_at = _lineage_expiry(api_key)
    if isinstance(expires_at, DomainError):
        return expires_at
    membership = Membership.objects.filter(
        organization_id=api_key.organization_id, user_id=api_key.user_id
    ).first()
    if membership is None or not api_key.user.is_active:
        return ApiKeyRevoked("This API key's owner is no longer a member of the organization.")
    organization = api_key.organization
    role_override = RoleLimit.objects.filter(
        organization=organization, role=membership.role
    ).first()
    defaults = settings.ROLE_RATE_LIMITS[membership.role]
    role_default = RateLimit(rpm=defaults["rpm"], tpm=defaults["tpm"])
    member_limit = role_default
    model_rules = [organization.allowed_models]
    if role_override is not None:
        member_limit = _limit(role_override.rpm_limit, role_override.tpm_limit, role_default)
        model_rules.append(role_override.allowed_models)
    model_rules.append(api_key.allowed_models)
    from accounts.services import api_key_touch  # services import this module

    api_key_touch(api_key_id=api_key.pk, used_at=timezone.now())
    return Principal(
        key_id=api_key.pk,
        key_prefix=api_key.prefix,
        organization_id=organization.pk,
        organization_slug=organization.slug,
        user_id=api_key.user_id,
        username=api_key.user.username,
        role=membership.role,
        expires_at=expires_at,
        model_rules=tuple(tuple(rule) for rule in model_rules if rule),
        key_limit=_limit(api_key.rpm_limit, api_key.tpm_limit, None),
        member_limit=member_limit,
        organization_limit=_limit(organization.rpm_limit, organization.tpm_limit, None),
        compression_level=organization.compression_level,
        compression_roles=tuple(organization.compression_roles or ()),
        compression_tool_results=organization.compression_tool_results,
        cache_enabled=organization.cache_enabled,
        cache_scope=organization.cache_scope,
        prompt_cache_breakpoints=organization.prompt_cache_breakpoints,
        prompt_cache_key_scope=organization.prompt_cache_key_scope,
    )


BACKGROUND_ROLE = "background"


def principal_for_organization(*, organization_id: int, username: str) -> Principal:
    """The caller of work the organization itself causes (translate-mode compilation is
    the client's; cache warming is nobody's): no key, no member, so only the
    organization's own model rules, rate limit and budget apply, and the usage event
    names no member. ``username`` names the work in logs."""
    organization = Organization.objects.get(pk=organization_id)
    return Principal(
        key_id=None,
        key_prefix="",
        organization_id=organization.pk,
        organization_slug=organization.slug,
        user_id=None,
        username=username,
        role=BACKGROUND_ROLE,
        expires_at=None,
        model_rules=(tuple(organization.allowed_models),) if organization.allowed_models else (),
        organization_limit=_limit(organization.rpm_limit, organization.tpm_limit, None),
        compression_level=organization.compression_level,
        compression_roles=tuple(organization.compression_roles or ()),
        compression_tool_results=organization.compression_tool_results,
        cache_enabled=organization.cache_enabled,
        cache_scope=organization.cache_scope,
        prompt_cache_breakpoints=organization.prompt_cache_breakpoints,
        prompt_cache_key_scope=organization.prompt_cache_key_scope,
    )


async def aprincipal_for_organization(*, organization_id: int, username: str) -> Principal:
    return await run_in_db_thread(
        principal_for_organization, organization_id=organization_id, username=username
    )


# Deeper lineages than this are refused rather than walked (no loop can form through the
# API, but a hand-edited row must not make the lookup spin).
MAX_KEY_LINEAGE = 16


def _lineage_expiry(api_key: ApiKey) -> datetime | None | DomainError:
    """The earliest expiry along the key's lineage, or the error when a key that created
    it (directly or not) was revoked: a child stops working with its parent."""
    expires_at = api_key.expires_at
    parent_id = api_key.parent_id
    for _depth in range(MAX_KEY_LINEAGE):
        if parent_id is None:
            return expires_at
        parent = (
            ApiKey.objects.filter(pk=parent_id)
            .only("pk", "parent_id", "revoked_at", "expires_at")
            .first()
        )
        if parent is None or parent.revoked_at is not None:
            return ApiKeyRevoked("The API key that created this key has been revoked.")
        if parent.expires_at is not None and (expires_at is None or parent.expires_at < expires_at):
            expires_at = parent.expires_at
        parent_id = parent.parent_id
    return ApiKeyRevoked("This API key's lineage is too deep.")


def api_key_for_principal(*, principal: Principal) -> ApiKey:
    """The key row behind a management API caller's key (the parent of keys it creates)."""
    return ApiKey.objects.get(pk=principal.key_id, organization_id=principal.organization_id)


def _check_fresh(entry: Principal | DomainError) -> Principal:
    if isinstance(entry, DomainError):
        raise entry
    if entry.expires_at is not None and entry.expires_at <= timezone.now():
        raise ApiKeyExpired()
    return entry


def principal_for_key(raw_key: str) -> Principal:
    """Resolve a raw key, from this process's cache when it is fresh enough."""
    key_hash = keys.hash_key(raw_key)
    fresh, entry = _principal_cache.get_fresh(key_hash)
    if not fresh:
        try:
            entry = _principal_from_db(raw_key, key_hash)
        except DATABASE_ERRORS as error:
            entry = _stale_or_unavailable(key_hash, error)
        else:
            _principal_cache.put(key_hash, entry, ttl=settings.API_KEY_CACHE_SECONDS)
    return _check_fresh(entry)


async def aprincipal_for_key(raw_key: str) -> Principal:
    """The async form: no thread hop at all while the cached entry is fresh."""
    key_hash = keys.hash_key(raw_key)
    try:
        entry = await _principal_cache.get_or_load(
            key_hash,
            lambda: run_in_db_thread(_principal_from_db, raw_key, key_hash),
            ttl=settings.API_KEY_CACHE_SECONDS,
        )
    except DATABASE_ERRORS as error:
        entry = _stale_or_unavailable(key_hash, error)
    return _check_fresh(entry)


def _stale_or_unavailable(key_hash: str, error: Exception) -> Principal | DomainError:
    """With the database unreachable, a key checked recently keeps its last answer (for
    API_KEY_STALE_IF_ERROR_SECONDS); any other key cannot be checked: a 503."""
    known, entry = _principal_cache.get_stale(
        key_hash, max_age=settings.API_KEY_STALE_IF_ERROR_SECONDS
    )
    if not known:
        raise outage_refusal("database") from error
    return entry


def raw_key_from_headers(headers) -> str:
    """The client's key from ``Authorization: Bearer`` or ``x-api-key``."""
    authorization = headers.get("Authorization", "")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    raise ApiKeyMissing()
