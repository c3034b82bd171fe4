"""Serverless entry points: AWS Lambda (through Mangum) and Google Cloud Functions.

Wiring only. Both platforms answer one HTTP request per invocation and buffer the whole
response, so websockets are not served and a server-sent-events stream arrives in one piece
when the completion ends (see docs/decisions/0002-serverless-entry-points.md).
"""

from __future__ import annotations

import asyncio
import functools
import io
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")

from common import tracing
from synthlang_site.loop_settling import loop_run_settled


@functools.cache
def _mangum():
    from mangum import Mangum

    from synthlang_site.asgi import application

    # Channels' router knows no "lifespan" scope, and Django has no start-up hooks to run.
    return Mangum(application, lifespan="off")


@functools.cache
def _wsgi_application():
    from synthlang_site.wsgi import application

    return application


# How long an answer waits for its spans to be exported. Both platforms may freeze the
# process once the handler returns, and the batch processor's thread with it, so spans
# are sent before; a collector that is slow or down costs one answer this much, not more
# (common.tracing.force_flush).
SPAN_FLUSH_MILLIS = 1000


def _current_loop() -> asyncio.AbstractEventLoop:
    """The thread's event loop, made if it has none. Mangum asks ``get_event_loop()``,
    which raises once anything in the process has run ``asyncio.run()`` (it leaves the
    thread with no loop): a start-up step or an earlier invocation's library would turn
    every later request into a RuntimeError."""
    policy = asyncio.get_event_loop_policy()
    try:
        loop = policy.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        loop = policy.new_event_loop()
        policy.set_event_loop(loop)
    return loop


def lambda_handler(event: dict, context) -> dict:
    """AWS Lambda handler for API Gateway (HTTP API or REST API) and function URL events."""
    loop = _current_loop()
    try:
        return _mangum()(event, context)
    finally:
        # What the request left on Mangum's loop (its accounting, its usage event's
        # write) would wait, frozen, for the next invocation: it runs to its end now. The
        # loop is the one Mangum ran the request on (the thread's, as above).
        loop_run_settled(loop)
        tracing.force_flush(SPAN_FLUSH_MILLIS)


def cloud_function(request):
    """Serve a Cloud Functions request (a ``flask.Request``) with Django's WSGI handler."""
    from werkzeug.wrappers import Response

    environ = dict(request.environ)
    # The framework may already have read the body stream: hand Django a fresh copy.
    body = request.get_data(cache=True)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    try:
        # Buffered: the body is read and closed here, so the server span has ended.
        return Response.from_app(_wsgi_application(), environ, buffered=True)
    finally:
        tracing.force_flush(SPAN_FLUSH_MILLIS)
