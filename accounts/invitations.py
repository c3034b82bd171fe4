"""Members join by an e-mail invitation, the only way an organization admin adds one.

Adding a member by username told the admin whether that username existed in another
organization. An invitation is sent to an address, and the answer is the same whether or
not the address (or a user with it) exists anywhere: no lookup happens until the person
who reads the e-mail opens its link. There they sign in with their existing account's
password, or choose a password for a new account whose username is the address.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Invitation, Membership, Organization, Role, User
from accounts.services import audit_record, membership_set
from common.errors import InvalidRequest

logger = logging.getLogger(__name__)


def _token_hash(token: str) -> str:
    # The token is 256 random bits: a plain hash is as good as an HMAC here.
    return hashlib.sha256(token.encode()).hexdigest()


def _normalised_email(email: str) -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidRequest("Enter a valid e-mail address.", param="email") from None
    return email


def _send(*, email: str, organization_name: str, role: str, link: str, days: int) -> None:
    try:
        send_mail(
            subject=f"You are invited to {organization_name} on SynthLang Proxy",
            message=(
                f"You have been invited to join {organization_name} as {role}.\n\n"
                f"Open this link to accept (valid for {days} days):\n{link}\n\n"
                "If you did not expect this invitation, ignore this message."
            ),
            from_email=None,
            recipient_list=[email],
        )
    except Exception:
        # The admin's answer does not depend on delivery either: it is logged for operators.
        logger.exception("could not send an invitation e-mail")


@transaction.atomic
def member_invite(
    *,
    organization: Organization,
    email: str,
    role: str | None = None,
    actor: User | None,
    accept_url: Callable[[str], str],
) -> Invitation:
    """Invite ``email`` to ``organization``; ``accept_url(token)`` is the link sent.

    Never looks at who the address belongs to: the caller learns nothing either way. A
    newer invitation to the same address replaces the pending one.
    """
    email = _normalised_email(email)
    role = role or settings.DEFAULT_ROLE
    if role not in Role.values:
        raise InvalidRequest(
            f"Unknown role {role!r}; expected one of {', '.join(Role.values)}.", param="role"
        )
    now = timezone.now()
    Invitation.objects.filter(
        organization=organization, email=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    days = settings.INVITATION_VALID_DAYS
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by=actor if actor is not None and actor.pk else None,
        expires_at=now + timedelta(days=days),
    )
    audit_record(
        organization=organization,
        actor=actor,
        event="member.invited",
        target=invitation,
        details={"email": email, "role": role},
    )
    link = accept_url(token)
    name = organization.name
    transaction.on_commit(
        lambda: _send(email=email, organization_name=name, role=role, link=link, days=days)
    )
    return invitation


def invitation_for_token(token: str) -> Invitation | None:
    """The pending invitation a link's token names; None for any other token."""
    if not token or len(token) > 100:
        return None
    return (
        Invitation.objects.select_related("organization")
        .filter(
            token_hash=_token_hash(token),
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .first()
    )


def invitation_account(*, invitation: Invitation) -> User | None:
    """The account the invited address already has (its e-mail, or its username being the
    address), for the person who opened the link: they own the address."""
    return (
        User.objects.filter(
            Q(email__iexact=invitation.email) | Q(username__iexact=invitation.email)
        )
        .filter(is_active=True)
        .order_by("pk")
        .first()
    )


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """``user`` joins with the invited role; an existing member keeps the role they have."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise InvalidRequest("This invitation was already used or withdrawn.")
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    membership = Membership.objects.filter(organization=invitation.organization, user=user).first()
    if membership is None:
        membership = membership_set(
            organization=invitation.organization, user=user, role=invitation.role, actor=user
        )
    audit_record(
        organization=invitation.organization,
        actor=user,
        event="member.invitation_accepted",
        target=invitation,
        details={"role": membership.role},
    )
    return membership


@transaction.atomic
def invitation_accept_with_password(*, invitation: Invitation, password: str) -> User:
    """Accept for an address without a usable account: the account is created (or its
    first password set), its username being the address."""
    user = invitation_account(invitation=invitation)
    if user is not None and user.has_usable_password():
        raise InvalidRequest("This address has an account: sign in with its password.")
    created = user is None
    if user is None:
        user = User(username=invitation.email[:150], email=invitation.email)
    try:
        validate_password(password, user=user)
    except ValidationError as error:
        raise InvalidRequest(" ".join(error.messages), param="password") from None
    user.set_password(password)
    user.save()
    audit_record(
        organization=invitation.organization,
        actor=user,
        event="user.created" if created else "user.password_set",
        target=user,
    )
    invitation_accept(invitation=invitation, user=user)
    return user
