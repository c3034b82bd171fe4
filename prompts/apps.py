from django.apps import AppConfig

# What an organization admin may do with the library in the admin: read prompts and their
# versions, add versions, move labels. Versions are never changed or deleted (they are
# what past usage was billed under).
ORGANIZATION_ADMIN_PERMISSIONS = [
    "view_prompt",
    "add_prompt",
    "change_prompt",
    "delete_prompt",
    "view_promptversion",
    "add_promptversion",
    "view_promptlabel",
    "add_promptlabel",
    "change_promptlabel",
    "delete_promptlabel",
]


class PromptsConfig(AppConfig):
    name = "prompts"
    verbose_name = "Prompt library"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts.permissions import organization_admin_permissions_register

        organization_admin_permissions_register(
            app_label=self.label, codenames=ORGANIZATION_ADMIN_PERMISSIONS
        )
