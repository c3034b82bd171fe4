"""The Celery application: Redis (or any broker URL) in production, eager without one."""

import os

from celery import Celery
from celery.signals import worker_init, worker_process_shutdown, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")

app = Celery("synthlang_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _tracing_start(**_kwargs):
    # A worker's tasks (batch results, cache warming) trace like the server's requests,
    # each the child of the request that queued it (common.tracing._celery_instrument);
    # the SDK's batch processor starts its thread again in each forked pool process.
    from common.tracing import tracing_setup

    tracing_setup()


@worker_process_shutdown.connect
def _tracing_flush(**_kwargs):
    # A pool process that stops (the worker's stop, a recycled child) exits without the
    # interpreter's exit hooks: what its batch processor holds is sent now or lost.
    from common.tracing import force_flush

    force_flush(5000)


@worker_shutdown.connect
def _tracing_stop(**_kwargs):
    from common.tracing import tracing_shutdown

    tracing_shutdown()
