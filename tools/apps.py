from django.apps import AppConfig

# What an organization admin may do with the tools of the organizations they administer.
ORGANIZATION_ADMIN_PERMISSIONS = [
    "view_tool",
    "add_tool",
    "change_tool",
    "delete_tool",
    "view_toolattachrule",
    "add_toolattachrule",
    "change_toolattachrule",
    "delete_toolattachrule",
]


class ToolsConfig(AppConfig):
    name = "tools"
    verbose_name = "Tools and MCP"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts.permissions import organization_admin_permissions_register

        organization_admin_permissions_register(
            app_label=self.label, codenames=ORGANIZATION_ADMIN_PERMISSIONS
        )
        # Registers the tool-call counter at start-up, so /metrics shows it before the first
        # call (the views that import it load with the URLconf, on the first request).
        from tools import invoke  # noqa: F401
