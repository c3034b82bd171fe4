"""Billing in the admin: prices, budgets, alerts, usage (read-only), reports and a dashboard.

Every tenant-owned page is scoped by ``OrganizationScopedAdmin``; budgets are written
through ``billing.services.budget_set`` so the change is validated and audited.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin_scoping import OrganizationScopedAdmin, administered_organization_ids
from accounts.models import Organization
from billing import attribution, budgets, charts, reports, services
from billing.models import Budget, BudgetAlert, DailyUsageRollup, MonthlyReport, Price, UsageEvent
from billing.pricing import micros_to_usd, usd_to_micros
from billing.selectors import price_cache_forget
from common.errors import DomainError
from common.outbound import url_problem

DASHBOARD_PERIODS = (7, 30, 90, 365)


def _usd(micros) -> str:
    return "-" if micros is None else f"${micros_to_usd(micros)}"


class ReadOnlyAdminMixin:
    """Append-only or derived data: visible, never edited by hand."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Prices ------------------------------------------------------------------------------------


_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write", "batch_input", "batch_output")


class PriceForm(forms.ModelForm):
    input_usd = forms.DecimalField(label="Input $/Mtok", min_value=0, decimal_places=6)
    output_usd = forms.DecimalField(label="Output $/Mtok", min_value=0, decimal_places=6)
    cached_input_usd = forms.DecimalField(
        label="Cached input $/Mtok",
        min_value=0,
        decimal_places=6,
        required=False,
        help_text="Empty: cached tokens cost the input price.",
    )
    cache_write_usd = forms.DecimalField(
        label="Cache write $/Mtok",
        min_value=0,
        decimal_places=6,
        required=False,
        help_text=(
            "Input written to the provider's prompt cache (Anthropic's 5-minute cache: "
            "1.25 times the input price). Empty: the input price."
        ),
    )

    batch_input_usd = forms.DecimalField(
        label="Batch input $/Mtok",
        min_value=0,
        decimal_places=6,
        required=False,
        help_text="Input in a batch. Empty: half the input price.",
    )
    batch_output_usd = forms.DecimalField(
        label="Batch output $/Mtok",
        min_value=0,
        decimal_places=6,
        required=False,
        help_text="Output in a batch. Empty: half the output price.",
    )
    per_unit_usd = forms.DecimalField(
        label="$ per unit",
        min_value=0,
        decimal_places=6,
        required=False,
        help_text=(
            "For models billed by the unit: per image, per second of audio (transcription), "
            "per character (speech). Empty: not billed per unit."
        ),
    )

    class Meta:
        model = Price
        fields = ["model_pattern", "effective_from", "source"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name in _PRICE_FIELDS:
                micros = getattr(self.instance, f"{name}_per_mtok_micros")
                if micros is not None:
                    self.initial[f"{name}_usd"] = Decimal(micros) / 1_000_000
            if self.instance.per_unit_micros is not None:
                self.initial["per_unit_usd"] = Decimal(self.instance.per_unit_micros) / 1_000_000

    def clean(self):
        cleaned = super().clean()
        for name in _PRICE_FIELDS:
            value = cleaned.get(f"{name}_usd")
            setattr(
                self.instance,
                f"{name}_per_mtok_micros",
                None if value is None else usd_to_micros(value),
            )
        per_unit = cleaned.get("per_unit_usd")
        self.instance.per_unit_micros = None if per_unit is None else usd_to_micros(per_unit)
        cached = self.instance.cached_input_per_mtok_micros
        if cached is not None and cached > (self.instance.input_per_mtok_micros or 0):
            raise forms.ValidationError("The cached-input price cannot exceed the input price.")
        return cleaned


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """Platform-wide list prices. To change a price, add a row with a later date."""

    form = PriceForm
    list_display = (
        "model_pattern",
        "effective_from",
        "input",
        "cached_input",
        "cache_write",
        "output",
        "per_unit",
        "source",
    )
    search_fields = ("model_pattern", "source")
    list_filter = ("effective_from",)
    ordering = ("model_pattern", "-effective_from")

    @admin.display(description="Input $/Mtok")
    def input(self, obj):
        return _usd(obj.input_per_mtok_micros)

    @admin.display(description="Cached $/Mtok")
    def cached_input(self, obj):
        return _usd(obj.cached_input_per_mtok_micros)

    @admin.display(description="Cache write $/Mtok")
    def cache_write(self, obj):
        return _usd(obj.cache_write_per_mtok_micros)

    @admin.display(description="Output $/Mtok")
    def output(self, obj):
        return _usd(obj.output_per_mtok_micros)

    @admin.display(description="$ per unit")
    def per_unit(self, obj):
        return _usd(obj.per_unit_micros)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        price_cache_forget()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        price_cache_forget()


# --- Budgets -----------------------------------------------------------------------------------


# The largest limit whose micro-dollars fit the 64-bit column (with room to spare).
MAX_BUDGET_USD = Decimal("9000000000000")


class BudgetForm(forms.ModelForm):
    monthly_usd = forms.DecimalField(
        label="Monthly hard limit ($)",
        min_value=0,
        max_value=MAX_BUDGET_USD,
        decimal_places=6,
        required=False,
        help_text="Requests that would exceed it get 429 insufficient_quota. Empty: none.",
    )
    soft_usd = forms.DecimalField(
        label="Soft limit ($)",
        min_value=0,
        max_value=MAX_BUDGET_USD,
        decimal_places=6,
        required=False,
        help_text="An alert (and the webhook) once a month when spend reaches it.",
    )

    class Meta:
        model = Budget
        fields = ["organization", "user", "api_key", "webhook_url"]
        help_texts = {
            "user": "A member's budget; leave user and API key empty for the organization's.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for field, micros in (
                ("monthly_usd", self.instance.monthly_limit_micros),
                ("soft_usd", self.instance.soft_limit_micros),
            ):
                if micros is not None:
                    self.initial[field] = Decimal(micros) / 1_000_000

    def clean_webhook_url(self):
        url = self.cleaned_data.get("webhook_url") or ""
        problem = url_problem(url) if url else None
        if problem:
            raise forms.ValidationError(problem)
        return url

    def clean(self):
        cleaned = super().clean()
        organization, user, api_key = (
            cleaned.get(name) for name in ("organization", "user", "api_key")
        )
        if user and api_key:
            raise forms.ValidationError("A budget is for a member or for a key, not both.")
        if organization and api_key and api_key.organization_id != organization.pk:
            raise forms.ValidationError("That API key belongs to another organization.")
        if (
            organization
            and user
            and not user.memberships.filter(organization=organization).exists()
        ):
            raise forms.ValidationError("That user is not a member of the organization.")
        self.instance.scope = (
            "key" if cleaned.get("api_key") else "member" if cleaned.get("user") else "organization"
        )
        monthly, soft = cleaned.get("monthly_usd"), cleaned.get("soft_usd")
        self.instance.monthly_limit_micros = None if monthly is None else usd_to_micros(monthly)
        self.instance.soft_limit_micros = None if soft is None else usd_to_micros(soft)
        if monthly is not None and soft is not None and soft > monthly:
            raise forms.ValidationError("The soft limit cannot exceed the hard limit.")
        return cleaned


@admin.register(Budget)
class BudgetAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    form = BudgetForm
    list_display = ("__str__", "scope", "hard", "soft", "spent_this_month", "webhook_url")
    list_filter = ("scope", "organization")
    list_select_related = ("organization", "user", "api_key")

    def get_readonly_fields(self, request, obj=None):
        # The target of a budget is its identity; make a new budget for another target.
        return ("organization", "user", "api_key") if obj else ()

    @admin.display(description="Hard limit")
    def hard(self, obj):
        return _usd(obj.monthly_limit_micros)

    @admin.display(description="Soft limit")
    def soft(self, obj):
        return _usd(obj.soft_limit_micros)

    @admin.display(description="This month (spent + reserved)")
    def spent_this_month(self, obj):
        try:
            value = budgets.budget_counter_value(budget_id=obj.pk)
        except Exception:
            return "unavailable"
        return "not loaded yet" if value is None else _usd(value)

    def save_scoped_model(self, request, obj, form, change):
        try:
            saved = services.budget_set(
                organization=obj.organization,
                user=obj.user,
                api_key=obj.api_key,
                monthly_limit_micros=obj.monthly_limit_micros,
                soft_limit_micros=obj.soft_limit_micros,
                webhook_url=obj.webhook_url,
                actor=request.user,
            )
        except DomainError as error:
            raise PermissionDenied(error.message) from error
        obj.pk = saved.pk


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin, admin.ModelAdmin):
    list_display = ("budget", "kind", "month", "spent", "limit", "created_at", "webhook")
    list_filter = ("kind", "month")
    list_select_related = ("budget", "budget__organization", "budget__user", "budget__api_key")

    @admin.display(description="Spent")
    def spent(self, obj):
        return _usd(obj.spent_micros)

    @admin.display(description="Limit")
    def limit(self, obj):
        return _usd(obj.limit_micros)

    @admin.display(description="Webhook")
    def webhook(self, obj):
        if obj.webhook_delivered_at:
            return f"delivered {obj.webhook_delivered_at:%Y-%m-%d %H:%M}"
        return obj.webhook_error or "-"


# --- Usage -------------------------------------------------------------------------------------


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
        return _usd(obj.cost_micros)


@admin.register(DailyUsageRollup)
class DailyUsageRollupAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin, admin.ModelAdmin):
    list_display = ("day", "organization", "model", "user_id", "api_key_id", "requests", "cost")
    list_filter = ("day",)
    search_fields = ("model",)
    list_select_related = ("organization",)
    change_list_template = "admin/billing/dailyusagerollup/change_list.html"

    @admin.display(description="Cost", ordering="cost_micros")
    def cost(self, obj):
        return _usd(obj.cost_micros)

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


# --- Monthly reports -----------------------------------------------------------------------


@admin.register(MonthlyReport)
class MonthlyReportAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin, admin.ModelAdmin):
    list_display = ("organization", "month", "total_cost", "updated_at", "download_link")
    list_filter = ("month",)
    list_select_related = ("organization",)
    actions = ["download"]
    exclude = ("csv_content",)

    @admin.display(description="Cost")
    def total_cost(self, obj):
        return _usd((obj.summary or {}).get("cost_micros"))

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
