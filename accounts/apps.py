from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_organization_admins_group(sender, app_config, **kwargs):
    from accounts.permissions import organization_admins_group_ensure

    organization_admins_group_ensure(app_label=app_config.label)


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
        # Every app's post_migrate: its permissions exist by then (Django creates them in
        # an earlier receiver), so the group gets them whatever the order of the apps.
        post_migrate.connect(
            _ensure_organization_admins_group, dispatch_uid="accounts_organization_admins_group"
        )
