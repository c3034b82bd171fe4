"""Writes for platform operations: task runs and the requests that start them."""

from __future__ import annotations

import re

from django.db import transaction
from django.utils import timezone

from accounts.services import audit_record
from common.logging import redact
from synthlang_site.models import TaskRun

BACKUP_TASK = "backup"
MONTHLY_REPORTS_TASK = "monthly_reports"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def task_run_claim(*, task_name: str, task_run_id: int | None = None) -> TaskRun | None:
    """Mark a run as started; ``None`` when another delivery of the same message has it.

    A scheduled run has no row yet and gets one. A run queued from the admin is claimed
    with a conditional update, so a message delivered twice (acks_late redelivery) runs
    the job once.
    """
    now = timezone.now()
    if task_run_id is None:
        return TaskRun.objects.create(
            task_name=task_name, status=TaskRun.Status.RUNNING, started_at=now
        )
    claimed = TaskRun.objects.filter(
        pk=task_run_id, task_name=task_name, status=TaskRun.Status.QUEUED
    ).update(status=TaskRun.Status.RUNNING, started_at=now)
    return TaskRun.objects.get(pk=task_run_id) if claimed else None


def task_run_finish(*, task_run: TaskRun, summary: str = "", error: str = "") -> TaskRun:
    task_run.status = TaskRun.Status.FAILED if error else TaskRun.Status.SUCCEEDED
    task_run.finished_at = timezone.now()
    task_run.result_summary = summary[:10_000]
    task_run.error = redact(error)[:10_000]
    task_run.save(update_fields=["status", "finished_at", "result_summary", "error"])
    return task_run


@transaction.atomic
def backup_request(*, actor) -> TaskRun:
    """Queue a backup now (the admin's button); the worker runs it."""
    from synthlang_site.tasks import backup_run

    task_run = TaskRun.objects.create(task_name=BACKUP_TASK, requested_by=actor)
    audit_record(organization=None, actor=actor, event="ops.backup_requested", target=task_run)
    # After commit: the worker must find the row when it picks the message up.
    transaction.on_commit(lambda: backup_run.delay(task_run_id=task_run.pk))
    return task_run


@transaction.atomic
def monthly_reports_request(*, actor, month: str | None = None) -> TaskRun:
    """Queue every organization's report for ``month`` (YYYY-MM; default last month)."""
    from synthlang_site.tasks import monthly_reports_run

    if month is not None and not _MONTH.match(month):
        raise ValueError(f"month must look like 2026-01, not {month!r}")
    task_run = TaskRun.objects.create(task_name=MONTHLY_REPORTS_TASK, requested_by=actor)
    audit_record(
        organization=None,
        actor=actor,
        event="ops.monthly_reports_requested",
        target=task_run,
        details={"month": month or "last month"},
    )
    transaction.on_commit(lambda: monthly_reports_run.delay(task_run_id=task_run.pk, month=month))
    return task_run
