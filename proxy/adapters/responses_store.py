"""Stored Responses API answers: writes, tenant-scoped reads and the retention cleanup.

Synchronous ORM functions; the async views call them through ``run_in_db_thread``.
Every read names the organization: another organization's id is simply not found.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction

from common.errors import NotFound
from proxy.models import StoredResponse


def _not_found(response_id: str, *, param: str | None = None) -> NotFound:
    return NotFound(f"No response found with id '{response_id}'.", param=param)


def stored_response_create(
    *,
    organization_id: int,
    api_key_id: int | None,
    response: dict,
    conversation: list[dict],
    input_items: list[dict] | None = None,
) -> StoredResponse:
    # One INSERT, atomic on its own: no transaction around it (two round trips fewer on
    # a write that the client waits for).
    now = datetime.now(tz=UTC)
    return StoredResponse.objects.create(
        id=response["id"],
        organization_id=organization_id,
        api_key_id=api_key_id,
        model=str(response.get("model") or "")[:200],
        response=response,
        conversation=conversation,
        input_items=input_items or [],
        expires_at=now + timedelta(days=settings.RESPONSES_RETENTION_DAYS),
    )


def stored_response_get(
    *, organization_id: int, response_id: str, param: str | None = None
) -> StoredResponse:
    stored = (
        StoredResponse.objects.for_org(organization_id)
        .live(datetime.now(tz=UTC))
        .filter(id=response_id)
        .first()
    )
    if stored is None:
        raise _not_found(response_id, param=param)
    return stored


@transaction.atomic
def stored_response_delete(*, organization_id: int, response_id: str) -> None:
    deleted, _ = (
        StoredResponse.objects.for_org(organization_id)
        .live(datetime.now(tz=UTC))
        .filter(id=response_id)
        .delete()
    )
    if not deleted:
        raise _not_found(response_id)


def stored_responses_delete_expired(*, now: datetime | None = None) -> int:
    """Delete every stored response past its retention; returns how many went."""
    deleted, _ = StoredResponse.objects.filter(expires_at__lte=now or datetime.now(tz=UTC)).delete()
    return deleted
