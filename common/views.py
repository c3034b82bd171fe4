"""Error pages: OpenAI's JSON error body for API paths, Django's pages elsewhere."""

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from common.errors import error_body

API_PREFIXES = ("/v1/", "/api/")


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIXES)


@csrf_exempt
def not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse(
            error_body(
                message=f"Unknown request URL: {request.method} {request.path}.", code="not_found"
            ),
            status=404,
        )
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse(
            error_body(
                message="The server had an error while processing your request.",
                code="server_error",
            ),
            status=500,
        )
    return defaults.server_error(request)


def metrics_export(request):
    """Prometheus' exposition, behind ``METRICS_TOKEN`` (a bearer token) when it is set."""
    from django_prometheus.exports import ExportToDjangoView

    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            response = HttpResponse(
                "/metrics needs the METRICS_TOKEN bearer token.\n",
                status=401,
                content_type="text/plain; charset=utf-8",
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return ExportToDjangoView(request)
