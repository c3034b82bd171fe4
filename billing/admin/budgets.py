"""Budgets, written through ``billing.services.budget_set`` (validated and audited), and
the alerts they raised."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied

from accounts.admin_scoping import OrganizationScopedAdmin, ReadOnlyAdminMixin
from billing import budgets, services
from billing.admin.common import usd_display
from billing.models import Budget, BudgetAlert
from billing.pricing import usd_to_micros
from common.errors import DomainError
from common.outbound import url_problem

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
        return usd_display(obj.monthly_limit_micros)

    @admin.display(description="Soft limit")
    def soft(self, obj):
        return usd_display(obj.soft_limit_micros)

    @admin.display(description="This month (spent + reserved)")
    def spent_this_month(self, obj):
        try:
            value = budgets.budget_counter_value(budget_id=obj.pk)
        except Exception:
            return "unavailable"
        return "not loaded yet" if value is None else usd_display(value)

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
        return usd_display(obj.spent_micros)

    @admin.display(description="Limit")
    def limit(self, obj):
        return usd_display(obj.limit_micros)

    @admin.display(description="Webhook")
    def webhook(self, obj):
        if obj.webhook_delivered_at:
            return f"delivered {obj.webhook_delivered_at:%Y-%m-%d %H:%M}"
        return obj.webhook_error or "-"
