from django.urls import path

from tools import api

urlpatterns = [
    path("tools/", api.ToolListCreateView.as_view(), name="api-tools"),
    path("tools/<int:tool_id>/", api.ToolDetailView.as_view(), name="api-tool-detail"),
    path("tools/<int:tool_id>/rules/", api.ToolRuleCreateView.as_view(), name="api-tool-rules"),
    path(
        "tools/<int:tool_id>/rules/<int:rule_id>/",
        api.ToolRuleDetailView.as_view(),
        name="api-tool-rule-detail",
    ),
]
