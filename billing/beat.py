"""Billing's Celery beat entries, for ``CELERY_BEAT_SCHEDULE`` in the settings.

Plain data with no Django imports, so the settings module can import it.
"""

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # The usage buffer drains every few seconds; a full batch also triggers a flush.
    "billing-usage-flush": {"task": "billing.tasks.usage_flush", "schedule": 2.0},
    "billing-usage-prune": {
        "task": "billing.tasks.usage_prune",
        "schedule": crontab(hour=3, minute=17),
    },
    # Last month's reports, once the month is over in UTC.
    "billing-monthly-reports": {
        "task": "billing.tasks.monthly_reports_generate",
        "schedule": crontab(day_of_month=1, hour=0, minute=30),
    },
}
