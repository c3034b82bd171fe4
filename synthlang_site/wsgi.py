"""WSGI entry, for tools that only speak WSGI, and the Cloud Functions entry's application
(synthlang_site/serverless.py); Daphne serves the ASGI app in production."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")

django_wsgi = get_wsgi_application()

from common.tracing import TracingWSGIMiddleware, tracing_setup  # noqa: E402

# The server span of each request, as the ASGI stack opens it; off unless
# OTEL_EXPORTER_OTLP_ENDPOINT is set.
application = TracingWSGIMiddleware(django_wsgi)
tracing_setup()
