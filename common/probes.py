"""Kubernetes' probes: ``/livez`` (the process answers) and ``/readyz`` (it can serve).

Liveness asks nothing of the database or Redis: a probe that failed during their outage
would have every pod restarted, which cures nothing and drops the requests in flight.
Readiness checks what a request needs (``READYZ_REQUIRES``: the database, and Redis when
its outage policy refuses requests) and answers 503 naming what is not ready; the other
components (Redis under the `local` policy, the semantic tier, the Celery broker) are
reported without deciding. ``/health``, kept for the
Docker health check and the platforms' settings, answers exactly as ``/readyz`` does.

The answer names components and their states, never an exception's text, a host or a path:
probes are answered to anyone who reaches the pod. The full reason is logged, once per
change of a component's state.

``ProbesMiddleware`` answers the probes and ``/metrics`` before host validation and the HTTPS
redirect: kubelets and Prometheus reach the pod by its IP over plain HTTP, neither of which
belongs in ALLOWED_HOSTS or would survive a redirect.
"""

from __future__ import annotations

import logging
import threading

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from common.health import component_states

logger = logging.getLogger(__name__)

# What a component's state may show to anyone: names and kinds, no text from an exception.
_PUBLIC_FIELDS = (
    "status",
    "latency_ms",
    "vendor",
    "backend",
    "transport",
    "embedder",
    "policy",
)
_FAILING = ("error", "degraded")

_last_states: dict[str, str] = {}
_last_states_lock = threading.Lock()


def required_components() -> list[str]:
    """The components whose failure makes the instance not ready.

    The cache is only a dependency when it is Redis: the local-memory cache cannot fail.
    """
    required = []
    for name in settings.READYZ_REQUIRES:
        if name == "cache" and settings.CACHE_TYPE != "redis":
            continue
        required.append(name)
    return required


def _public(state: dict) -> dict:
    return {key: state[key] for key in _PUBLIC_FIELDS if key in state}


def _log_changes(components: dict[str, dict]) -> None:
    for name, state in components.items():
        status = state["status"]
        with _last_states_lock:
            previous = _last_states.get(name)
            _last_states[name] = status
        changed = previous != status if previous is not None else status in _FAILING
        if changed:
            log = logger.warning if status in _FAILING else logger.info
            log(
                "readiness: %s is %s%s",
                name,
                status,
                f" ({state['error']})" if state.get("error") else "",
                extra={"component": name, "component_status": status},
            )


def readiness() -> tuple[int, dict]:
    """The status code and body of ``/readyz``."""
    components = component_states()
    _log_changes(components)
    failing = [name for name, state in components.items() if state["status"] in _FAILING]
    not_ready = [
        name
        for name in required_components()
        if name in failing or name not in components  # a required probe that is missing
    ]
    if components.get("database", {}).get("status") != "ok":
        # The connection is broken; drop it so the next check reconnects.
        connections["default"].close()
    if not_ready:
        status = "not_ready"
    elif failing:
        status = "degraded"
    else:
        status = "ok"
    body = {
        "status": status,
        "not_ready": not_ready,
        "failing": failing,
        "components": {name: _public(state) for name, state in components.items()},
    }
    return (503 if not_ready else 200), body


@never_cache
def readyz(request):
    status, body = readiness()
    return JsonResponse(body, status=status)


@never_cache
def livez(request):
    return JsonResponse({"status": "ok"})


def _metrics(request):
    from common.views import metrics_export

    return metrics_export(request)


# Paths answered here, before anything looks at the Host header or the scheme.
PROBES = {
    "/livez": livez,
    "/readyz": readyz,
    "/health": readyz,
    "/health/": readyz,
    "/metrics": _metrics,
}


class ProbesMiddleware:
    """Answers the probes and ``/metrics`` ahead of host validation and HTTPS redirects.

    First in MIDDLEWARE after the request id. ``/livez`` is answered on the event loop
    itself (it must not wait for a thread that a stuck pool would never free); the others
    touch the database or the cache and run on a worker thread.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        view = PROBES.get(request.path)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)

    async def __acall__(self, request):
        view = PROBES.get(request.path)
        if view is not None and request.method in ("GET", "HEAD"):
            if view is livez:
                return livez(request)
            return await sync_to_async(view, thread_sensitive=False)(request)
        return await self.get_response(request)
