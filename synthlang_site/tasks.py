"""Celery tasks for platform operations, each recorded as a ``TaskRun`` the admin lists."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from celery import shared_task

from billing import tasks as billing_tasks
from common import backups
from synthlang_site import services
from synthlang_site.models import TaskRun

logger = logging.getLogger(__name__)


class _Recorder:
    def __init__(self, task_run: TaskRun):
        self.task_run = task_run
        self.summary = ""


@contextlib.contextmanager
def task_run_recorded(*, task_name: str, task_run_id: int | None) -> Iterator[_Recorder | None]:
    """Record the run of the enclosed job: started, then succeeded with a summary or failed.

    Yields ``None`` when the run was already claimed (a redelivered message): the caller
    then does nothing, which keeps the task idempotent. A failure is recorded and
    re-raised, so Celery still sees and logs it.
    """
    task_run = services.task_run_claim(task_name=task_name, task_run_id=task_run_id)
    if task_run is None:
        logger.info("task run %s already claimed; skipping", task_run_id)
        yield None
        return
    recorder = _Recorder(task_run)
    try:
        yield recorder
    except Exception as error:
        services.task_run_finish(task_run=task_run, error=f"{type(error).__name__}: {error}")
        raise
    services.task_run_finish(task_run=task_run, summary=recorder.summary)


@shared_task(ignore_result=True)
def backup_run(task_run_id: int | None = None) -> None:
    with task_run_recorded(task_name=services.BACKUP_TASK, task_run_id=task_run_id) as run:
        if run is None:
            return
        result = backups.backup_create()
        run.summary = (
            f"wrote {result.location} ({result.size_bytes} bytes, {result.vendor} "
            f"database {result.database}); pruned {len(result.pruned)} old backup(s)"
        )


@shared_task(ignore_result=True)
def monthly_reports_run(task_run_id: int | None = None, month: str | None = None) -> None:
    with task_run_recorded(task_name=services.MONTHLY_REPORTS_TASK, task_run_id=task_run_id) as run:
        if run is None:
            return
        # Billing owns the reports; its task queues one per organization.
        count = billing_tasks.monthly_reports_generate(month)
        run.summary = f"queued reports of {count} organization(s) for {month or 'last month'}"
