"""`GET /v1/cache/stats` and `POST /v1/cache/clear`: the caller's cache, tenant-scoped.

Same conventions as `proxy.views`: API-key auth, OpenAI-format errors, async, thin.
"""

from __future__ import annotations

from django.urls import path

from common.errors import PermissionDenied
from proxy import response_cache
from proxy.response_cache import services as cache_services
from proxy.views import ProxyEndpoint, authenticate, json_response, openai_errors


class CacheStatsView(ProxyEndpoint):
    http_method_names = ["get"]

    @openai_errors
    async def get(self, request):
        principal = await authenticate(request)
        stats = await cache_services.cache_stats(scope=response_cache.cache_scope(principal))
        return json_response(stats)


class CacheClearView(ProxyEndpoint):
    http_method_names = ["post"]

    @openai_errors
    async def post(self, request):
        principal = await authenticate(request)
        if principal.role != "admin":
            raise PermissionDenied("Only organization admins may clear the cache.")
        deleted = await cache_services.cache_clear_organization(
            organization_id=principal.organization_id
        )
        return json_response({"object": "cache.clear", "cleared": True, "deleted": deleted})


cache_urlpatterns = [
    path("cache/stats", CacheStatsView.as_view(), name="cache-stats"),
    path("cache/clear", CacheClearView.as_view(), name="cache-clear"),
]
