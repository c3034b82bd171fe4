"""Billing's part of the management API, included under ``/api/``."""

from django.urls import path

from billing import api
from billing.views import UsageView

urlpatterns = [
    path("usage", UsageView.as_view(), name="api-usage"),
    path("budgets/", api.BudgetListView.as_view(), name="api-budgets"),
    path("budgets/<int:budget_id>/", api.BudgetDetailView.as_view(), name="api-budget-detail"),
    path("prices/", api.PriceListView.as_view(), name="api-prices"),
]
