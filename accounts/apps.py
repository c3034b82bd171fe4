from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _apply_roles(sender, **kwargs):
    from accounts.services import roles_apply_from_settings

    roles_apply_from_settings()


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Organizations and access"

    def ready(self):
        # ADMIN_USERS / PREMIUM_USERS take effect on every migrate (and at start, see
        # synthlang_site.__main__), so a deployment's environment stays the source of truth.
        post_migrate.connect(_apply_roles, sender=self, dispatch_uid="accounts_apply_roles")
