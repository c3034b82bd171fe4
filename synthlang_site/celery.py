"""The Celery application: Redis (or any broker URL) in production, eager without one."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")

app = Celery("synthlang_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
