"""Billing's part of the management API, included under ``/api/``."""

from django.urls import path

from billing.views import UsageView

urlpatterns = [path("usage", UsageView.as_view(), name="api-usage")]
