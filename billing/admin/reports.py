"""Monthly reports: read-only, downloaded as CSV (one) or a zip of CSVs (several)."""

from __future__ import annotations

import io
import zipfile

from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin_scoping import OrganizationScopedAdmin, ReadOnlyAdminMixin
from billing.admin.common import usd_display
from billing.models import MonthlyReport


@admin.register(MonthlyReport)
class MonthlyReportAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin, admin.ModelAdmin):
    list_display = ("organization", "month", "total_cost", "updated_at", "download_link")
    list_filter = ("month",)
    list_select_related = ("organization",)
    actions = ["download"]
    exclude = ("csv_content",)

    @admin.display(description="Cost")
    def total_cost(self, obj):
        return usd_display((obj.summary or {}).get("cost_micros"))

    @admin.display(description="CSV")
    def download_link(self, obj):
        url = reverse("admin:billing_monthlyreport_download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.filename)

    def get_urls(self):
        return [
            path(
                "<int:report_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="billing_monthlyreport_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request, report_id):
        # Through the scoped queryset: another organization's report is a 404.
        report = get_object_or_404(self.get_queryset(request), pk=report_id)
        return _csv_response(report.csv_content, report.filename)

    @admin.action(description="Download the selected reports (CSV, or a zip of CSVs)")
    def download(self, request, queryset):
        selected = list(queryset.select_related("organization"))
        if not selected:
            self.message_user(request, "No report selected.", messages.WARNING)
            return None
        if len(selected) == 1:
            return _csv_response(selected[0].csv_content, selected[0].filename)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for report in selected:
                archive.writestr(report.filename, report.csv_content)
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="usage-reports.zip"'
        return response


def _csv_response(content: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
