"""What the billing admin's pages share: amounts shown in dollars."""

from __future__ import annotations

from billing.pricing import micros_to_usd


def usd_display(micros) -> str:
    return "-" if micros is None else f"${micros_to_usd(micros)}"
