"""Celery tasks: thin, idempotent, taking ids; the work is in services and usage."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from celery import shared_task
from django.conf import settings

from accounts.models import Organization
from billing import services, usage
from billing.models import BudgetAlert
from billing.webhooks import WebhookFailed, webhook_post

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def usage_flush() -> dict:
    """Drain the usage buffer into the database (beat runs it every few seconds)."""
    stats = usage.usage_flush_run()
    return stats.__dict__


@shared_task(ignore_result=True)
def usage_prune() -> int:
    """Delete raw events older than ``USAGE_RETENTION_DAYS``; rollups stay."""
    return services.usage_prune()


@shared_task(ignore_result=True)
def monthly_reports_generate(month: str | None = None) -> int:
    """Queue one report per organization for ``month`` (YYYY-MM; default: last month)."""
    if month is None:
        first_of_this_month = datetime.now(UTC).date().replace(day=1)
        previous = date.fromordinal(first_of_this_month.toordinal() - 1)
        month = f"{previous:%Y-%m}"
    count = 0
    for organization_id in Organization.objects.values_list("pk", flat=True):
        monthly_report_generate.delay(organization_id, month)
        count += 1
    return count


@shared_task(ignore_result=True)
def monthly_report_generate(organization_id: int, month: str) -> int | None:
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return None
    first_day = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC).date()
    return services.monthly_report_create(organization=organization, month=first_day).pk


@shared_task(ignore_result=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def budget_alert_raise(budget_id: int, month: str, kind: str, spent_micros: int) -> int | None:
    alert = services.budget_alert_raise(
        budget_id=budget_id,
        month=date.fromisoformat(month),
        kind=kind,
        spent_micros=spent_micros,
    )
    return alert.pk if alert else None


@shared_task(ignore_result=True, bind=True, max_retries=5)
def budget_alert_deliver(self, alert_id: int) -> None:
    """POST an alert to its budget's webhook; retried with backoff, delivered at most once."""
    alert = BudgetAlert.objects.select_related("budget", "budget__organization").filter(pk=alert_id)
    alert = alert.first()
    if alert is None or alert.webhook_delivered_at is not None or not alert.budget.webhook_url:
        return
    timeout = float(getattr(settings, "BUDGET_WEBHOOK_TIMEOUT_SECONDS", 5))
    payload = services.budget_alert_payload(alert=alert)
    try:
        webhook_post(alert.budget.webhook_url, payload, timeout=timeout)
    except WebhookFailed as error:
        services.budget_alert_mark_delivered(alert=alert, error=str(error))
        if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
            logger.warning("budget alert webhook %s failed: %s", alert_id, error)
            return  # no worker to retry later in the embedded mode
        raise self.retry(exc=error, countdown=30 * (2**self.request.retries)) from error
    services.budget_alert_mark_delivered(alert=alert)
