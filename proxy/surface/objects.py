"""Files and batches owned by organizations: our ids, the upstream's, and who holds them.

Every read is scoped to the caller's organization (``access_*``): another organization's
id is a 404, exactly like an id that never existed. Writes go through the ``*_record``
functions. The ORM runs in the database thread; with the database down these answer a
503 (``_db``), never a 500.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts.models import ProviderCredential
from accounts.selectors import Principal
from common.db import run_in_db_thread
from common.errors import NotFound, ServiceUnavailable
from proxy.models import UpstreamBatch, UpstreamFile
from proxy.providers.base import Target
from proxy.routing import DeploymentPlan, default_plan

FILE_PREFIX = "file-syn"
BATCH_PREFIX = "batch_syn"


async def _db(fn, *args, **kwargs):
    try:
        return await run_in_db_thread(fn, *args, **kwargs)
    except DatabaseError:
        raise ServiceUnavailable(
            "The database is unavailable; files and batches cannot be read or written now."
        ) from None


def new_public_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


# --- Where an object lives ------------------------------------------------------------------


def holder_fields(plan: DeploymentPlan) -> dict:
    """The columns that say which provider and key hold an object created through ``plan``."""
    return {
        "provider": plan.provider,
        "credential_id": plan.credential_id,
        "platform_key": plan.platform_key,
    }


def _plan_of(record: UpstreamFile | UpstreamBatch) -> DeploymentPlan:
    if record.provider == "fake":
        return DeploymentPlan(provider="fake", upstream_model="")
    if record.platform_key:
        return DeploymentPlan(
            provider=record.provider,
            upstream_model="",
            base_url=settings.OPENAI_BASE_URL,
            platform_key=True,
        )
    credential = (
        ProviderCredential.objects.filter(pk=record.credential_id).first()
        if record.credential_id
        else None
    )
    if credential is None:
        raise ServiceUnavailable(
            "The provider key that holds this object upstream has been removed."
        )
    return DeploymentPlan(
        provider=record.provider,
        upstream_model="",
        base_url=credential.base_url or settings.OPENAI_BASE_URL,
        encrypted_key=credential.encrypted_key,
        options=dict(credential.options),
        credential_id=credential.pk,
        organization_owned=credential.organization_id is not None,
    )


def target_of_sync(record) -> Target:
    return _plan_of(record).target()


async def target_of(record) -> Target:
    return await _db(target_of_sync, record)


async def default_holder(organization_id: int) -> DeploymentPlan:
    """Where a file that no model routes goes: the organization's default provider."""
    return await _db(default_plan, organization_id, "")


# --- Scoped reads ----------------------------------------------------------------------------


def _access(model, principal: Principal, public_id: str, kind: str):
    record = (
        model.objects.for_org(principal.organization_id)
        .filter(public_id=public_id)
        .select_related(*(("input_file", "output_file", "error_file") if kind == "batch" else ()))
        .first()
    )
    if record is None:
        raise NotFound(f"No such {kind}: '{public_id}'.", param="id")
    return record


async def access_file(principal: Principal, public_id: str) -> UpstreamFile:
    return await _db(_access, UpstreamFile, principal, public_id, "file")


async def access_batch(principal: Principal, public_id: str) -> UpstreamBatch:
    return await _db(_access, UpstreamBatch, principal, public_id, "batch")


def _page(model, principal: Principal, *, limit: int, after: str, purpose: str = ""):
    rows = model.objects.for_org(principal.organization_id)
    if purpose:
        rows = rows.filter(purpose=purpose)
    if after:
        cursor = rows.filter(public_id=after).first()
        if cursor is not None:
            rows = rows.filter(created_at__lt=cursor.created_at)
    found = list(rows.order_by("-created_at", "-pk")[: limit + 1])
    return [row.snapshot for row in found[:limit]], len(found) > limit


async def page_of(model, principal: Principal, **options) -> dict:
    data, has_more = await _db(_page, model, principal, **options)
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


# --- Writes ----------------------------------------------------------------------------------


def file_snapshot(record: UpstreamFile, upstream: dict) -> dict:
    return {
        **upstream,
        "id": record.public_id,
        "object": "file",
        "filename": upstream.get("filename") or record.filename,
        "bytes": upstream.get("bytes", record.bytes),
        "purpose": upstream.get("purpose") or record.purpose,
    }


def _file_record(*, principal: Principal, plan: DeploymentPlan, upstream: dict, **fields):
    record = UpstreamFile(
        organization_id=principal.organization_id,
        public_id=new_public_id(FILE_PREFIX),
        upstream_id=str(upstream["id"]),
        user_id=principal.user_id,
        api_key_id=principal.key_id,
        **holder_fields(plan),
        **fields,
    )
    record.snapshot = file_snapshot(record, upstream)
    record.save()
    return record


async def file_record(**kwargs) -> UpstreamFile:
    return await _db(_file_record, **kwargs)


async def snapshot_save(record, snapshot: dict) -> None:
    record.snapshot = snapshot
    await _db(record.save, update_fields=["snapshot"])


async def file_forget(record: UpstreamFile) -> None:
    await _db(record.delete)


def batch_snapshot(record: UpstreamBatch, upstream: dict) -> dict:
    """The upstream's batch under our ids; files it produced map to ours (or to none)."""
    return {
        **upstream,
        "id": record.public_id,
        "object": "batch",
        "input_file_id": record.input_file.public_id if record.input_file else None,
        "output_file_id": record.output_file.public_id if record.output_file else None,
        "error_file_id": record.error_file.public_id if record.error_file else None,
        "model": record.model,
    }


def _batch_record(*, principal: Principal, source: UpstreamFile, upstream: dict) -> UpstreamBatch:
    record = UpstreamBatch(
        organization_id=principal.organization_id,
        public_id=new_public_id(BATCH_PREFIX),
        upstream_id=str(upstream["id"]),
        provider=source.provider,
        credential_id=source.credential_id,
        platform_key=source.platform_key,
        user_id=principal.user_id,
        api_key_id=principal.key_id,
        input_file=source,
        model=source.batch_model,
        endpoint=source.batch_endpoint,
    )
    record.snapshot = batch_snapshot(record, upstream)
    record.save()
    return record


async def batch_record(**kwargs) -> UpstreamBatch:
    return await _db(_batch_record, **kwargs)


def _produced_file(batch: UpstreamBatch, upstream_id: str, role: str) -> UpstreamFile:
    existing = UpstreamFile.objects.filter(
        organization_id=batch.organization_id, upstream_id=upstream_id, provider=batch.provider
    ).first()
    if existing is not None:
        return existing
    record = UpstreamFile(
        organization_id=batch.organization_id,
        public_id=new_public_id(FILE_PREFIX),
        upstream_id=upstream_id,
        provider=batch.provider,
        credential_id=batch.credential_id,
        platform_key=batch.platform_key,
        user_id=batch.user_id,
        api_key_id=batch.api_key_id,
        purpose="batch_output",
        filename=f"{batch.public_id}_{role}.jsonl",
    )
    record.snapshot = file_snapshot(
        record, {"created_at": int(timezone.now().timestamp()), "status": "processed"}
    )
    record.save()
    return record


def _batch_refresh(batch: UpstreamBatch, upstream: dict) -> UpstreamBatch:
    """Record the files the upstream batch produced (once) and its latest state."""
    with transaction.atomic():
        for role, name in (("output", "output_file_id"), ("error", "error_file_id")):
            upstream_id = upstream.get(name)
            if upstream_id and getattr(batch, f"{role}_file") is None:
                setattr(batch, f"{role}_file", _produced_file(batch, str(upstream_id), role))
        batch.snapshot = batch_snapshot(batch, upstream)
        batch.save(update_fields=["output_file", "error_file", "snapshot"])
    return batch


async def batch_refresh(batch: UpstreamBatch, upstream: dict) -> UpstreamBatch:
    return await _db(_batch_refresh, batch, upstream)


def _batch_to_account(output_file: UpstreamFile) -> UpstreamBatch | None:
    """The batch whose results ``output_file`` holds, claimed for accounting; None when
    there is none or it was accounted already. The claim is one conditional UPDATE, so
    two fetches at once account the batch once."""
    batch = UpstreamBatch.objects.filter(output_file=output_file).first()
    if batch is None:
        return None
    claimed = UpstreamBatch.objects.filter(pk=batch.pk, accounted_at__isnull=True).update(
        accounted_at=timezone.now()
    )
    return batch if claimed else None


async def batch_to_account(output_file: UpstreamFile) -> UpstreamBatch | None:
    return await _db(_batch_to_account, output_file)
