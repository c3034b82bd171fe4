"""Creates the demo organization, an admin user and an API key for `make run`.

Runs on every `make run` and does nothing once the demo exists, so the credentials
are printed exactly once.
"""

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import services
from accounts.models import Organization, User

DEMO_SLUG = "demo"
DEMO_USERNAME = "admin"


class Command(BaseCommand):
    help = "Create a demo organization, admin user and API key (only once)."

    @transaction.atomic
    def handle(self, *args, **options):
        if Organization.objects.filter(slug=DEMO_SLUG).exists():
            self.stdout.write(
                "Demo already set up (organization 'demo', user 'admin'). "
                "Create another key with: python manage.py create_api_key --org demo --user admin"
            )
            return
        organization = services.organization_create(name="Demo", slug=DEMO_SLUG)
        password = secrets.token_urlsafe(12)
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            user = User.objects.create_superuser(DEMO_USERNAME, "admin@example.com", password)
        else:
            user.set_password(password)
            user.is_staff = user.is_superuser = True
            user.save()
        services.membership_set(organization=organization, user=user, role="admin", actor=user)
        _, plaintext = services.api_key_create(
            organization=organization, user=user, name="demo key", actor=user
        )
        self.stdout.write(self.style.SUCCESS("Demo organization created. Shown once:"))
        self.stdout.write(
            f"  admin site:  http://127.0.0.1:{settings.PORT}/admin/  user 'admin'  "
            f"password {password}"
        )
        self.stdout.write(f"  API key:     {plaintext}")
