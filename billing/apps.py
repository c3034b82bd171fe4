from django.apps import AppConfig

# What an organization admin may do with billing's data (rows scoped by organization):
# manage budgets, read usage, alerts, reports and the platform's prices.
ORGANIZATION_ADMIN_PERMISSIONS = [
    "view_price",
    "view_usageevent",
    "view_dailyusagerollup",
    "view_budget",
    "add_budget",
    "change_budget",
    "delete_budget",
    "view_budgetalert",
    "view_monthlyreport",
]


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing and usage"

    def ready(self):
        from accounts.permissions import organization_admin_permissions_register

        organization_admin_permissions_register(
            app_label=self.label, codenames=ORGANIZATION_ADMIN_PERMISSIONS
        )
