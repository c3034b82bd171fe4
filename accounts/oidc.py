"""Single sign-on to the admin with OpenID Connect, on mozilla-django-oidc.

The identity provider is the source of truth for who belongs where: at every sign-in the
user's organizations (``OIDC_ORGANIZATION_CLAIM``, slugs of existing organizations) and
role (``OIDC_ROLE_CLAIM`` through ``OIDC_ROLE_MAP``) are applied through
``membership_set``, so each change is audited and admin access follows the role as it
does for local users. A sign-in whose claims name no existing organization is refused:
organizations are created by platform staff, never by a token.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db import transaction
from django.http import Http404
from django.urls import path
from mozilla_django_oidc import views as oidc_views
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts import services
from accounts.models import Organization, Role

logger = logging.getLogger(__name__)

# Strongest first: a user in several mapped groups gets the widest role.
_ROLE_ORDER = (Role.ADMIN, Role.PREMIUM, Role.BASIC)


def oidc_enabled() -> bool:
    return bool(settings.OIDC_RP_CLIENT_ID)


def single_sign_on_context(request) -> dict:
    """For the admin's sign-in page: whether to offer the identity provider's button."""
    return {"single_sign_on": oidc_enabled()}


def username_from_claims(email: str, claims: dict) -> str:
    """The account's username: the provider's preferred username, else the address."""
    preferred = claims.get("preferred_username") or email or claims.get("sub", "")
    return str(preferred)[:150]


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return []


def role_map() -> dict[str, str]:
    """``OIDC_ROLE_MAP`` ("group=role,...") as a dict; an unknown role is a start-up error."""
    mapping = {}
    for pair in filter(None, (part.strip() for part in settings.OIDC_ROLE_MAP.split(","))):
        group, _, role = pair.partition("=")
        if role not in Role.values:
            raise ValueError(f"OIDC_ROLE_MAP: {role!r} is not a role ({', '.join(Role.values)})")
        mapping[group.strip()] = role
    return mapping


def role_from_claims(claims: dict) -> str:
    roles = {role_map().get(group) for group in _as_list(claims.get(settings.OIDC_ROLE_CLAIM))}
    for role in _ROLE_ORDER:
        if role in roles:
            return role
    return settings.DEFAULT_ROLE


def organizations_from_claims(claims: dict) -> list[Organization]:
    slugs = _as_list(claims.get(settings.OIDC_ORGANIZATION_CLAIM))
    return list(Organization.objects.filter(slug__in=slugs)) if slugs else []


class OrganizationOIDCBackend(OIDCAuthenticationBackend):
    """Creates the user on first sign-in and applies the claimed organizations and role."""

    def verify_claims(self, claims):
        if not claims.get("email") or not claims.get("email_verified", True):
            return False
        if not organizations_from_claims(claims):
            logger.warning(
                "single sign-on refused: the claims name no organization of this platform"
            )
            return False
        return True

    @transaction.atomic
    def create_user(self, claims):
        user = super().create_user(claims)
        user.set_unusable_password()
        user.save(update_fields=["password"])
        self._memberships_apply(user, claims)
        return user

    @transaction.atomic
    def update_user(self, user, claims):
        self._memberships_apply(user, claims)
        return user

    @staticmethod
    def _memberships_apply(user, claims) -> None:
        role = role_from_claims(claims)
        for organization in organizations_from_claims(claims):
            services.membership_set(organization=organization, user=user, role=role, actor=user)
        user.refresh_from_db()


class LocalPasswordBackend(ModelBackend):
    """Django's password sign-in, limited to platform staff when ADMIN_LOCAL_PASSWORDS is
    false (single sign-on for everyone else, a way in for staff if the provider is down)."""

    def user_can_authenticate(self, user):
        if not super().user_can_authenticate(user):
            return False
        return settings.ADMIN_LOCAL_PASSWORDS or user.is_superuser


def _only_when_enabled(view):
    def guarded(request, *args, **kwargs):
        if not oidc_enabled():
            raise Http404("Single sign-on is not configured.")
        return view(request, *args, **kwargs)

    return guarded


def oidc_urlpatterns() -> list:
    """The sign-in and callback URLs; 404 while single sign-on is off."""
    return [
        path(
            "oidc/callback/",
            _only_when_enabled(oidc_views.OIDCAuthenticationCallbackView.as_view()),
            name="oidc_authentication_callback",
        ),
        path(
            "oidc/authenticate/",
            _only_when_enabled(oidc_views.OIDCAuthenticationRequestView.as_view()),
            name="oidc_authentication_init",
        ),
        path(
            "oidc/logout/",
            _only_when_enabled(oidc_views.OIDCLogoutView.as_view()),
            name="oidc_logout",
        ),
    ]
