"""Let organization admins use billing's admin pages (rows are scoped by organization).

They manage their organization's budgets and read its usage, alerts and reports.
Prices are platform-wide: they may read them, only platform staff change them.
"""

from django.db import migrations

from accounts.permissions import organization_admins_grant

CODENAMES = [
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


def grant(apps, schema_editor):
    organization_admins_grant(apps, app_label="billing", codenames=CODENAMES)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_organization_admins_group"),
        ("billing", "0002_seed_list_prices"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
