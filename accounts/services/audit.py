"""The audit trail: every write to accounts data leaves one entry."""

from __future__ import annotations

from accounts.models import (
    AuditLogEntry,
    Organization,
    User,
)


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
