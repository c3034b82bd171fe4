from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from accounts.invitation_views import invitation_accept_view
from accounts.oidc import oidc_urlpatterns
from common.probes import livez, readyz
from common.views import metrics_export, not_found, server_error
from synthlang_site.admin_views import admin_urlpatterns

urlpatterns = [
    # First: the API is most of the traffic, and Django tries the patterns in order.
    path("v1/", include("proxy.urls")),
    path("v1/", include("tools.urls")),
    # Answered by common.probes.ProbesMiddleware first; here for reverse() and the test client
    # paths that skip the middleware.
    path("livez", livez, name="livez"),
    path("readyz", readyz, name="readyz"),
    path("health", readyz, name="health"),
    path("health/", readyz),
    path("metrics", metrics_export, name="prometheus-django-metrics"),
    *admin_urlpatterns(),
    path("admin/", admin.site.urls),
    path("invitations/<str:token>/", invitation_accept_view, name="invitation-accept"),
    *oidc_urlpatterns(),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", include("accounts.api_urls")),
    path("api/", include("billing.api_urls")),
    path("api/", include("proxy.api_urls")),
    path("api/", include("prompts.api_urls")),
    path("api/", include("tools.api_urls")),
    path("api/", include("guardrails.api_urls")),
    # Unknown API URLs answer in OpenAI's error format, even with DEBUG on.
    re_path(r"^(?:v1|api)/", not_found),
]

handler404 = not_found
handler500 = server_error
