"""The "Organization admins" group: the model permissions an organization admin holds.

Django's admin asks for model permissions before it shows anything, so an organization
admin needs them; which *rows* they then see is decided by ``accounts.admin_scoping``.
The group is created by a data migration and users are put in or taken out of it by
``accounts.services.membership_set`` / ``membership_remove``, never by hand.

Other apps grant their models to the group from their own data migration::

    from accounts.permissions import organization_admins_grant

    def grant(apps, schema_editor):
        organization_admins_grant(
            apps, app_label="billing", codenames=["view_budget", "change_budget"]
        )

    class Migration(migrations.Migration):
        dependencies = [("accounts", "0002_organization_admins_group"), ("billing", "0001_initial")]
        operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
"""

from __future__ import annotations

ORGANIZATION_ADMINS_GROUP = "Organization admins"

# What an organization admin may do in the accounts app. Organizations are created and
# deleted by platform staff only; API keys are revoked, never deleted, so their usage
# history keeps its owner; the audit log is read-only for everyone.
ACCOUNTS_PERMISSIONS = [
    "view_organization",
    "change_organization",
    "view_membership",
    "add_membership",
    "change_membership",
    "delete_membership",
    "view_invitation",
    "add_invitation",
    "delete_invitation",
    "view_rolelimit",
    "add_rolelimit",
    "change_rolelimit",
    "delete_rolelimit",
    "view_apikey",
    "add_apikey",
    "change_apikey",
    "view_providercredential",
    "add_providercredential",
    "change_providercredential",
    "delete_providercredential",
    "view_auditlogentry",
]


def organization_admins_grant(apps, *, app_label: str, codenames: list[str]) -> None:
    """Give the group ``codenames`` of ``app_label``; for data migrations (historical apps)."""
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created by post_migrate, after every migration has run,
    # so on a fresh database they do not exist yet at this point: create them now.
    app_config = apps.get_app_config(app_label)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None

    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=ORGANIZATION_ADMINS_GROUP)
    permissions = list(
        permission_model.objects.filter(content_type__app_label=app_label, codename__in=codenames)
    )
    missing = set(codenames) - {permission.codename for permission in permissions}
    if missing:
        raise LookupError(f"no such permissions in {app_label}: {', '.join(sorted(missing))}")
    group.permissions.add(*permissions)


# --- Keeping the group whole ---------------------------------------------------------
# Each app names what its organization admins may do; the group is brought up to date
# after every migrate of that app. The data migrations do the same at the moment they
# run; this also restores the group wherever tables were emptied and refilled (a
# database flush re-runs post_migrate, not data migrations).
_GRANTS: dict[str, tuple[str, ...]] = {"accounts": tuple(ACCOUNTS_PERMISSIONS)}


def organization_admin_permissions_register(*, app_label: str, codenames: list[str]) -> None:
    _GRANTS[app_label] = tuple(codenames)


def organization_admins_group_ensure(*, app_label: str) -> None:
    from django.contrib.auth.models import Group, Permission

    codenames = _GRANTS.get(app_label)
    if not codenames:
        return
    group, _ = Group.objects.get_or_create(name=ORGANIZATION_ADMINS_GROUP)
    group.permissions.add(
        *Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
    )
