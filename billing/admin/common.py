"""What the billing admin's pages share: read-only pages, amounts shown in dollars."""

from __future__ import annotations

from billing.pricing import micros_to_usd


def usd_display(micros) -> str:
    return "-" if micros is None else f"${micros_to_usd(micros)}"


class ReadOnlyAdminMixin:
    """Append-only or derived data: visible, never edited by hand."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
