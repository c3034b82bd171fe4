"""Billing in the admin: prices, budgets, alerts, usage (read-only), reports and a dashboard.

Every tenant-owned page is scoped by ``OrganizationScopedAdmin``; budgets are written
through ``billing.services.budget_set`` so the change is validated and audited. One module
per subject; importing this package (Django's admin autodiscovery does) registers every page.
"""

from billing.admin import budgets, prices, reports, usage  # noqa: F401 - registers
