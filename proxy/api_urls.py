"""The proxy's part of the management API, included under ``/api/``."""

from django.urls import path

from proxy import api

urlpatterns = [
    path("routes/", api.ModelRouteListView.as_view(), name="api-routes"),
    path("routes/<int:route_id>/", api.ModelRouteDetailView.as_view(), name="api-route-detail"),
    path(
        "routes/<int:route_id>/deployments/",
        api.DeploymentListView.as_view(),
        name="api-route-deployments",
    ),
    path(
        "deployments/<int:deployment_id>/",
        api.DeploymentDetailView.as_view(),
        name="api-deployment-detail",
    ),
]
