from django.apps import AppConfig

# What an organization admin may do here (rows are scoped by organization).
ORGANIZATION_ADMIN_PERMISSIONS = [
    "view_organizationguardrails",
    "add_organizationguardrails",
    "change_organizationguardrails",
    "view_apikeyguardrails",
    "add_apikeyguardrails",
    "change_apikeyguardrails",
    "view_guardrailrule",
    "add_guardrailrule",
    "change_guardrailrule",
    "delete_guardrailrule",
]


class GuardrailsConfig(AppConfig):
    name = "guardrails"
    verbose_name = "Guardrails"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts.permissions import organization_admin_permissions_register

        organization_admin_permissions_register(
            app_label=self.label, codenames=ORGANIZATION_ADMIN_PERMISSIONS
        )
