"""OpenTelemetry tracing, off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

``tracing_setup()`` runs on every start path (the ASGI application, the Celery app, the
serverless entries); it builds one tracer provider exporting over OTLP/HTTP (protobuf) with
the standard ``OTEL_*`` variables (``OTEL_SERVICE_NAME``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_BSP_*``, ...), read by the SDK itself.

``span(...)`` is what the rest of the code calls. Off, it returns one shared do-nothing
object: no allocation, no context switch, so the hot path pays a global read. On, spans are
handed to a batch processor whose thread does the exporting: an exporter that is down or
slow costs the request nothing (the queue drops spans when full, never blocks).

``TracingMiddleware`` (ASGI: Daphne, ``python -m synthlang_site``, Lambda through Mangum)
and ``TracingWSGIMiddleware`` (Cloud Functions, ``synthlang_site.wsgi``) open the same server
span of each HTTP request, the child of the client's W3C ``traceparent`` when it sent a
valid one. ``inject()`` writes the current span's ``traceparent`` into the headers of an
upstream call; Celery's instrumentation carries it in a task's headers to the worker.
``force_flush()`` exports before a serverless process may be frozen.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

SERVICE_NAME = "synthlang-proxy"

# Set by ``tracing_setup`` when tracing is on; ``None`` keeps every helper a no-op.
_tracer = None
_provider = None
_propagator = None
_kinds: dict = {}
_setup_lock = threading.Lock()


class _NoSpan:
    """What ``span()`` gives when tracing is off: a context manager and a span that do
    nothing, shared by every caller."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def set_attribute(self, key, value) -> None:
        pass

    def set_attributes(self, attributes) -> None:
        pass

    def add_event(self, name, attributes=None) -> None:
        pass

    def record_exception(self, exception, attributes=None) -> None:
        pass

    def set_status(self, status, description=None) -> None:
        pass

    def end(self) -> None:
        pass

    def is_recording(self) -> bool:
        return False


NO_SPAN = _NoSpan()


def enabled() -> bool:
    return _tracer is not None


def tracing_setup() -> bool:
    """Start exporting spans when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only
    endpoint) is set; idempotent. Returns whether tracing is on."""
    global _tracer, _provider, _propagator, _kinds
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    for variable in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        protocol = os.environ.get(variable, "")
        if protocol and protocol != "http/protobuf":
            # The gRPC exporter would bring grpcio (a large native wheel) for no gain: every
            # destination we document accepts OTLP over HTTP.
            raise ImproperlyConfigured(
                f"{variable}={protocol!r} is not supported: use http/protobuf (the default)."
            )
    with _setup_lock:
        if _tracer is not None:
            return True
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
        # ``Resource.create`` adds OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _provider = provider
        _propagator = TraceContextTextMapPropagator()
        _kinds = {
            "internal": SpanKind.INTERNAL,
            "server": SpanKind.SERVER,
            "client": SpanKind.CLIENT,
        }
        _tracer = provider.get_tracer("synthlang")
        _celery_instrument(provider)
    logger.info("tracing on: spans exported over OTLP/HTTP")
    return True


def _celery_instrument(provider) -> None:
    """Celery's official instrumentation: publishing a task (``delay``, ``apply_async``)
    is a producer span whose context goes in the message's headers, and the worker runs
    the task in a consumer span that is its child, so a task a request queued is in the
    request's trace. A task queued with no trace around it (by beat) starts its own. In
    the server process it instruments the publishing, in the worker the running."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument(tracer_provider=provider)


def tracing_shutdown() -> None:
    """Flush what is queued (a worker's graceful stop) and turn tracing off."""
    global _tracer, _provider
    provider, _tracer, _provider = _provider, None, None
    if provider is not None:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        # The instrumentor is a singleton holding this provider's tracer: a later
        # ``tracing_setup`` instruments again with the new one.
        CeleryInstrumentor().uninstrument()
        provider.shutdown()


_flushing = None  # (process id, future) of the last flush


def force_flush(timeout_millis: int = 1000) -> bool:
    """Export every queued span now, waiting ``timeout_millis`` at most; returns whether
    the export finished. For a process that may be frozen once it answers (Lambda, Cloud
    Functions), where the batch processor's thread would not run until the next request.

    The SDK's own flush ignores its timeout and waits out the exporter's retries (up to
    ``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by default), so it runs in a thread of its own;
    while a previous flush is still stuck on a collector that is down, no new one waits,
    so only one answer pays the timeout, not every one."""
    global _flushing
    provider = _provider
    if provider is None:
        return True
    # Per process: a forked pool process inherits the parent's pool, but not its thread.
    pid = os.getpid()
    if _flushing is not None and _flushing[0] == pid and not _flushing[1].done():
        return False
    from concurrent.futures import TimeoutError as FlushTimeout

    with _setup_lock:
        flushing = _flush_pool(pid).submit(provider.force_flush)
        _flushing = (pid, flushing)
    try:
        flushing.result(timeout=timeout_millis / 1000)
    except FlushTimeout:
        return False
    return True


@functools.cache
def _flush_pool(pid: int):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="otel-flush")


def span(name: str, *, kind: str = "internal", attributes: Mapping | None = None):
    """A span as a context manager, the current span while it is open (its children nest
    under it). ``kind``: internal, server, client."""
    if _tracer is None:
        return NO_SPAN
    return _Current(_tracer.start_as_current_span(name, kind=_kinds[kind], attributes=attributes))


class _Current:
    """The SDK's current-span context manager, adding the conventions' ``error.type`` to
    the span an exception leaves (the SDK records the exception and the status only)."""

    __slots__ = ("_manager", "_span")

    def __init__(self, manager):
        self._manager = manager

    def __enter__(self):
        self._span = self._manager.__enter__()
        return self._span

    def __exit__(self, exc_type, exc, traceback):
        if exc is not None:
            error(self._span, exc)
        return self._manager.__exit__(exc_type, exc, traceback)


def start_span(name: str, *, attributes: Mapping | None = None):
    """A span that is not made current, for work that outlives one ``with`` block (a
    stream relayed across ``yield``s, where a context change would leak into the caller).
    The caller ends it."""
    if _tracer is None:
        return NO_SPAN
    return _tracer.start_span(name, attributes=attributes)


def traced(name: str):
    """Decorator: run an async function inside ``span(name)``."""

    def decorate(function):
        @functools.wraps(function)
        async def wrapper(*args, **kwargs):
            if _tracer is None:
                return await function(*args, **kwargs)
            with span(name):
                return await function(*args, **kwargs)

        return wrapper

    return decorate


def current_span():
    """The current recording span, or ``NO_SPAN``."""
    if _tracer is None:
        return NO_SPAN
    from opentelemetry import trace

    current = trace.get_current_span()
    return current if current.is_recording() else NO_SPAN


def inject(headers: dict[str, str]) -> bool:
    """Put the current span's ``traceparent`` (and ``tracestate``) in ``headers``; returns
    whether there was one, so the caller can fall back to relaying the client's."""
    if _tracer is None:
        return False
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        return False
    _propagator.inject(headers)
    return "traceparent" in headers


def error(span_, exception: BaseException | str) -> None:
    """Mark ``span_`` failed, with ``error.type`` as the conventions name it."""
    if not span_.is_recording():
        return
    from opentelemetry.trace import Status, StatusCode

    error_type = (
        exception
        if isinstance(exception, str)
        else getattr(exception, "code", "") or type(exception).__name__
    )
    span_.set_attribute("error.type", str(error_type))
    span_.set_status(Status(StatusCode.ERROR, str(error_type)))


# --- The server span of each HTTP request, on every start path -----------------------------


def _server_span_start(method: str, path: str, traceparent: str, tracestate: str):
    """The server span of one request and the context that makes it current: the child of
    the client's ``traceparent`` when it sent a valid one. One implementation for the ASGI
    and the WSGI middleware, so every start path opens the same span."""
    from opentelemetry.trace import SpanKind, set_span_in_context

    # Imported here: common.access_log's validation decides what counts as the client's.
    from common.access_log import current_request, valid_traceparent

    carrier = {}
    traceparent = valid_traceparent(traceparent)
    if traceparent:
        carrier["traceparent"] = traceparent
        if tracestate:
            carrier["tracestate"] = tracestate[:512]
    parent = _propagator.extract(carrier) if carrier else None
    attributes = {"http.request.method": method, "url.path": path}
    request = current_request()
    if request is not None:
        attributes["synthlang.request_id"] = request.request_id
    server_span = _tracer.start_span(
        f"{method} {path}", context=parent, kind=SpanKind.SERVER, attributes=attributes
    )
    return server_span, set_span_in_context(server_span, parent)


def _server_span_status(server_span, status: int) -> None:
    server_span.set_attribute("http.response.status_code", status)
    if status >= 500:
        error(server_span, str(status))


def _header(scope: dict, wanted: bytes) -> str:
    for name, value in scope.get("headers") or ():
        if name.lower() == wanted:
            return value.decode("latin-1")
    return ""


class TracingMiddleware:
    """ASGI middleware (Daphne, ``python -m synthlang_site``, the Lambda entry through
    Mangum): each HTTP request's server span, the parent of every span the request makes
    (and of the accounting that runs after its response: tasks copy the context they are
    created in)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if _tracer is None or scope["type"] != "http":
            return await self.application(scope, receive, send)
        from opentelemetry import context as otel_context

        server_span, context = _server_span_start(
            scope.get("method", ""),
            scope.get("path", ""),
            _header(scope, b"traceparent"),
            _header(scope, b"tracestate"),
        )
        token = otel_context.attach(context)

        async def send_noting_status(message):
            if message["type"] == "http.response.start":
                _server_span_status(server_span, message["status"])
            await send(message)

        try:
            await self.application(scope, receive, send_noting_status)
        except BaseException as exc:
            error(server_span, exc)
            raise
        finally:
            server_span.end()
            otel_context.detach(token)


class TracingWSGIMiddleware:
    """WSGI middleware (the Cloud Functions entry and ``synthlang_site.wsgi``): the same
    server span as the ASGI one. It ends when the server closes the response body, so a
    streamed body is inside it, and the span is current while the body is produced (Django
    relays an async stream while the server iterates it)."""

    def __init__(self, application):
        self.application = application

    def __call__(self, environ, start_response):
        if _tracer is None:
            return self.application(environ, start_response)
        from opentelemetry import context as otel_context

        server_span, context = _server_span_start(
            environ.get("REQUEST_METHOD", ""),
            environ.get("PATH_INFO", ""),
            environ.get("HTTP_TRACEPARENT", ""),
            environ.get("HTTP_TRACESTATE", ""),
        )

        def start_noting_status(status, headers, exc_info=None):
            _server_span_status(server_span, int(status.split(" ", 1)[0]))
            for name, value in headers:
                # The request id is given inside Django here (RequestIdMiddleware).
                if name.lower() == "x-request-id":
                    server_span.set_attribute("synthlang.request_id", value)
            return start_response(status, headers, exc_info)

        token = otel_context.attach(context)
        try:
            body = self.application(environ, start_noting_status)
        except BaseException as exc:
            error(server_span, exc)
            server_span.end()
            raise
        finally:
            otel_context.detach(token)
        return _TracedBody(body, server_span, context)


class _TracedBody:
    """A WSGI response body that makes its request's span current while each chunk is
    produced, and ends the span when the server closes it (PEP 3333: always)."""

    def __init__(self, body, server_span, context):
        self._body = body
        self._span = server_span
        self._context = context

    def __iter__(self):
        from opentelemetry import context as otel_context

        chunks = iter(self._body)
        while True:
            token = otel_context.attach(self._context)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except BaseException as exc:
                error(self._span, exc)
                raise
            finally:
                otel_context.detach(token)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._span.end()
