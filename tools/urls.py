"""The proxy-key endpoints under ``/v1/``."""

from django.urls import path

from tools.views import ToolCallView, ToolsView

urlpatterns = [
    path("tools", ToolsView.as_view(), name="tools"),
    path("tools/call", ToolCallView.as_view(), name="tools-call"),
]
