"""Serverless entry points: AWS Lambda (through Mangum) and Google Cloud Functions.

Wiring only. Both platforms answer one HTTP request per invocation and buffer the whole
response, so websockets are not served and a server-sent-events stream arrives in one piece
when the completion ends (see docs/decisions/0002-serverless-entry-points.md).
"""

from __future__ import annotations

import functools
import io
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")


@functools.cache
def _mangum():
    from mangum import Mangum

    from synthlang_site.asgi import application

    # Channels' router knows no "lifespan" scope, and Django has no start-up hooks to run.
    return Mangum(application, lifespan="off")


@functools.cache
def _wsgi_application():
    from django.core.wsgi import get_wsgi_application

    from common.tracing import tracing_setup

    application = get_wsgi_application()
    # No server span on this path (WSGI has no place for the ASGI middleware), but the
    # calls' own spans and the upstream's traceparent are there.
    tracing_setup()
    return application


def lambda_handler(event: dict, context) -> dict:
    """AWS Lambda handler for API Gateway (HTTP API or REST API) and function URL events."""
    return _mangum()(event, context)


def cloud_function(request):
    """Serve a Cloud Functions request (a ``flask.Request``) with Django's WSGI handler."""
    from werkzeug.wrappers import Response

    environ = dict(request.environ)
    # The framework may already have read the body stream: hand Django a fresh copy.
    body = request.get_data(cache=True)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return Response.from_app(_wsgi_application(), environ, buffered=True)
