"""Let organization admins manage their own guardrail settings and rules."""

from django.db import migrations

from accounts.permissions import organization_admins_grant
from guardrails.apps import ORGANIZATION_ADMIN_PERMISSIONS


def grant(apps, schema_editor):
    organization_admins_grant(
        apps, app_label="guardrails", codenames=ORGANIZATION_ADMIN_PERMISSIONS
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_organization_admins_group"),
        ("guardrails", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
