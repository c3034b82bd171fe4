"""Create the "Organization admins" group and put today's organization admins in it."""

from django.db import migrations

from accounts.permissions import (
    ACCOUNTS_PERMISSIONS,
    ORGANIZATION_ADMINS_GROUP,
    organization_admins_grant,
)


def create_group(apps, schema_editor):
    # The models that exist at this migration (later ones grant their own permissions).
    codenames = [name for name in ACCOUNTS_PERMISSIONS if not name.endswith("_invitation")]
    organization_admins_grant(apps, app_label="accounts", codenames=codenames)
    group = apps.get_model("auth", "Group").objects.get(name=ORGANIZATION_ADMINS_GROUP)
    user_model = apps.get_model("accounts", "User")
    # Admins who existed before this migration get the same access the service now grants.
    for user in user_model.objects.filter(memberships__role="admin").distinct():
        user.groups.add(group)
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=ORGANIZATION_ADMINS_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
