"""Let organization admins manage their own model routes and deployments, and read
their compiled prompts and cache entries (rows are scoped by organization)."""

from django.db import migrations

from accounts.permissions import organization_admins_grant

CODENAMES = [
    "view_modelroute",
    "add_modelroute",
    "change_modelroute",
    "delete_modelroute",
    "view_deployment",
    "add_deployment",
    "change_deployment",
    "delete_deployment",
    "view_translatedprompt",
    "view_cacheentry",
    "delete_cacheentry",
]


def grant(apps, schema_editor):
    organization_admins_grant(apps, app_label="proxy", codenames=CODENAMES)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_organization_admins_group"),
        ("proxy", "0002_cacheentry_translatedprompt"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
