"""The project's URLs plus billing's API, as the integrator wires them under /api/."""

from django.urls import include, path

from synthlang_site import urls as site_urls

urlpatterns = [path("api/", include("billing.api_urls")), *site_urls.urlpatterns]
handler404 = site_urls.handler404
handler500 = site_urls.handler500
