"""Let organization admins manage their own organization's tools and attach rules."""

from django.db import migrations

from accounts.permissions import organization_admins_grant
from tools.apps import ORGANIZATION_ADMIN_PERMISSIONS


def grant(apps, schema_editor):
    organization_admins_grant(
        apps, app_label="tools", codenames=list(ORGANIZATION_ADMIN_PERMISSIONS)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_organization_admins_group"),
        ("tools", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
