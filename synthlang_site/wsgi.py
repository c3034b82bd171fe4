"""WSGI entry, for tools that only speak WSGI, and the Cloud Functions entry's application
(synthlang_site/serverless.py); Daphne serves the ASGI app in production."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")

# What django.core.wsgi.get_wsgi_application does, with a handler that lets each request's
# work after its answer (accounting) finish before the view's event loop ends.
django.setup(set_prefix=False)

from common.tracing import TracingWSGIMiddleware, tracing_setup  # noqa: E402
from synthlang_site.loop_settling import SettlingWSGIHandler  # noqa: E402

# The server span of each request, as the ASGI stack opens it; off unless
# OTEL_EXPORTER_OTLP_ENDPOINT is set.
application = TracingWSGIMiddleware(SettlingWSGIHandler())
tracing_setup()
