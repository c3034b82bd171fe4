"""Error pages: OpenAI's JSON error body for API paths, Django's pages elsewhere."""

from django.http import JsonResponse
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
