"""Usage events and daily rollups (read-only), and the usage and cost dashboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from accounts.admin_scoping import (
    OrganizationScopedAdmin,
    ReadOnlyAdminMixin,
    administered_organization_ids,
)
from accounts.models import Organization
from billing import attribution, charts, reports
from billing.admin.common import usd_display
from billing.models import DailyUsageRollup, UsageEvent

DASHBOARD_PERIODS = (7, 30, 90, 365)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "organization",
        "user",
        "model",
        "status_code",
        "prompt_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "completion_tokens",
        "cost",
        "cache",
        "latency_ms",
    )
    list_filter = (
        "endpoint",
        "cache",
        "price_unknown",
        "usage_estimated",
        "stream",
        "status_code",
    )
    search_fields = ("request_id", "model", "upstream_model")
    list_select_related = ("organization", "user")
    # Counting millions of rows on every page view is what makes change lists slow.
    show_full_result_count = False

    @admin.display(description="Cost", ordering="cost_micros")
    def cost(self, obj):
        return usd_display(obj.cost_micros)


@admin.register(DailyUsageRollup)
class DailyUsageRollupAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin, admin.ModelAdmin):
    list_display = ("day", "organization", "model", "user_id", "api_key_id", "requests", "cost")
    list_filter = ("day",)
    search_fields = ("model",)
    list_select_related = ("organization",)
    change_list_template = "admin/billing/dailyusagerollup/change_list.html"

    @admin.display(description="Cost", ordering="cost_micros")
    def cost(self, obj):
        return usd_display(obj.cost_micros)

    def get_urls(self):
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="billing_dashboard",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = administered_organization_ids(request)
        organizations = Organization.objects.all()
        if ids is not None:
            organizations = organizations.filter(pk__in=ids)
        slug = request.GET.get("organization", "")
        if slug:
            organization = organizations.filter(slug=slug).first()
            if organization is None:
                raise Http404("No such organization.")
        elif ids is None:
            organization = None  # platform staff: every organization
        else:
            organization = organizations.first()
            if organization is None:
                raise PermissionDenied
        try:
            days = int(request.GET.get("days", 30))
        except ValueError:
            days = 30
        if days not in DASHBOARD_PERIODS:
            days = 30
        end = datetime.now(UTC).date()
        start = end - timedelta(days=days - 1)
        organization_id = organization.pk if organization else None

        export = request.GET.get("export", "")
        # Spend per end user and per tag sums one organization's events (decision 0024):
        # shown once an organization is chosen, never summed across the platform.
        attributed = {}
        if organization is not None:
            attributed = {
                group_by: attribution.attributed_grouped(
                    organization_id=organization.pk, start=start, end=end, group_by=group_by
                )
                for group_by in attribution.EVENT_GROUPS
            }
        if export in reports.GROUPS or export in attributed:
            rows = attributed.get(export) or reports.usage_grouped(
                organization_id=organization_id, start=start, end=end, group_by=export
            )
            response = HttpResponse(
                reports.rows_csv(rows, group_by=export), content_type="text/csv; charset=utf-8"
            )
            name = organization.slug if organization else "platform"
            response["Content-Disposition"] = (
                f'attachment; filename="usage-{name}-{start}-{end}-{export}.csv"'
            )
            return response

        totals = reports.usage_totals(organization_id=organization_id, start=start, end=end)
        grouped = {
            group_by: reports.usage_grouped(
                organization_id=organization_id, start=start, end=end, group_by=group_by
            )
            for group_by in reports.GROUPS
        }
        by_day = grouped["day"]
        day_label = "%m-%d"

        def series(field):
            return [
                (datetime.fromisoformat(row["key"]).strftime(day_label), row[field])
                for row in by_day
            ]

        chart_data = {
            "cost": charts.columns_chart(
                series("cost_micros"), title="Cost per day", format_value=charts.usd
            ),
            "requests": charts.columns_chart(
                series("requests"), title="Requests per day", color=charts.PALETTE[1]
            ),
            "tokens": charts.columns_chart(
                series("total_tokens"), title="Tokens per day", color=charts.PALETTE[4]
            ),
            "savings": charts.columns_chart(
                series("savings_micros"),
                title="Savings per day (caches and compression)",
                format_value=charts.usd,
                color=charts.PALETTE[2],
            ),
        }
        bars = {
            group_by: charts.bars_chart(
                [(str(row["label"]), row["cost_micros"]) for row in grouped[group_by]],
                title=f"Cost by {group_by}",
                format_value=charts.usd,
            )
            for group_by in ("model", "user", "key")
        }
        for group_by, label in (("end_user", "end user"), ("tag", "tag")):
            if group_by in attributed:
                bars[group_by] = charts.bars_chart(
                    [(str(row["label"]), row["cost_micros"]) for row in attributed[group_by]],
                    title=f"Cost by {label}",
                    format_value=charts.usd,
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage and cost",
            "opts": self.model._meta,
            "organizations": organizations,
            "organization": organization,
            "platform": ids is None,
            "days": days,
            "periods": DASHBOARD_PERIODS,
            "start": start,
            "end": end,
            "totals": totals,
            "charts": chart_data,
            "bars": bars,
            "grouped": grouped,
            "attributed": attributed,
            "query": f"organization={organization.slug if organization else ''}&days={days}",
        }
        return TemplateResponse(request, "admin/billing/dashboard.html", context)
