"""``{% synthlang_dashboard %}``: the usage dashboard on the admin's landing page.

A template tag rather than a custom ``AdminSite``: the stock site keeps its URLs,
``admin_view`` permission checks and app list, and the index template only adds the
dashboard above them. Every figure comes from the daily rollups through
``billing.reports`` (a handful of aggregate queries whatever the traffic), never from
the raw usage events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import template

from accounts.admin_scoping import administered_organization_ids
from accounts.models import Organization
from billing import charts, reports

register = template.Library()

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30


def _period(request) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_PERIOD))
    except ValueError:
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


def dashboard_scope(request) -> tuple[list[Organization], Organization | None, bool]:
    """(organizations offered, the one shown or ``None`` for the platform, may see all).

    An unknown or foreign ``organization`` parameter falls back to the default scope
    rather than erroring: the landing page must always render.
    """
    ids = administered_organization_ids(request)
    organizations = Organization.objects.order_by("name")
    if ids is not None:
        organizations = organizations.filter(pk__in=ids)
    organizations = list(organizations.only("pk", "name", "slug"))
    slug = request.GET.get("organization", "")
    chosen = next((org for org in organizations if org.slug == slug), None)
    if chosen is None and ids is not None:
        chosen = organizations[0] if organizations else None
    return organizations, chosen, ids is None


def dashboard_context(request) -> dict:
    organizations, organization, platform = dashboard_scope(request)
    if organization is None and not platform:
        return {"dashboard_visible": False}
    days = _period(request)
    end = datetime.now(UTC).date()
    start = end - timedelta(days=days - 1)
    organization_id = organization.pk if organization else None
    by_day = reports.usage_grouped(
        organization_id=organization_id, start=start, end=end, group_by="day"
    )
    totals = reports.usage_totals(organization_id=organization_id, start=start, end=end)

    def series(field):
        return [(row["key"][5:], row[field]) for row in by_day]

    chart_data = [
        ("Requests per day", charts.columns_chart(series("requests"), title="Requests per day")),
        (
            "Tokens per day",
            charts.columns_chart(
                series("total_tokens"), title="Tokens per day", color=charts.PALETTE[4]
            ),
        ),
        (
            "Cost per day",
            charts.columns_chart(
                series("cost_micros"), title="Cost per day", format_value=charts.usd
            ),
        ),
        (
            "Savings per day (caches and compression)",
            charts.columns_chart(
                series("savings_micros"),
                title="Savings per day",
                format_value=charts.usd,
                color=charts.PALETTE[2],
            ),
        ),
        (
            "Cache hit rate",
            charts.columns_chart(
                series("cache_hit_rate"),
                title="Cache hit rate per day",
                format_value=charts.percent,
                color=charts.PALETTE[1],
                max_value=1.0,
            ),
        ),
        (
            "Input read from the provider's prompt cache",
            charts.columns_chart(
                series("prompt_cache_read_rate"),
                title="Share of input tokens read from the provider's prompt cache per day",
                format_value=charts.percent,
                color=charts.PALETTE[4],
                max_value=1.0,
            ),
        ),
        (
            "Error rate",
            charts.columns_chart(
                series("error_rate"),
                title="Error rate per day",
                format_value=charts.percent,
                color=charts.PALETTE[3],
                max_value=1.0,
            ),
        ),
        (
            "Average latency",
            charts.columns_chart(
                series("avg_latency_ms"),
                title="Average latency per day",
                format_value=charts.milliseconds,
                color=charts.PALETTE[5],
            ),
        ),
    ]
    return {
        "dashboard_visible": True,
        "organizations": organizations,
        "organization": organization,
        "platform": platform,
        "days": days,
        "periods": PERIODS,
        "start": start,
        "end": end,
        "totals": totals,
        "charts": chart_data,
    }


@register.inclusion_tag("admin/synthlang/dashboard.html", takes_context=True)
def synthlang_dashboard(context):
    return dashboard_context(context["request"])
