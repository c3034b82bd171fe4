from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import services
from accounts.models import Organization, Role
from common.errors import DomainError


class Command(BaseCommand):
    help = (
        "Create an API key (and the organization, user and membership if missing). "
        "The key is printed alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--role", choices=Role.values, help="role of the membership")
        parser.add_argument("--name", default="", help="a label for the key")
        parser.add_argument("--expires-in-days", type=int, default=None)

    @transaction.atomic
    def handle(self, *args, org, user, role, name, expires_in_days, **options):
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days")
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            organization = services.organization_create(name=org, slug=org)
            self.stdout.write(f"created organization {org}")
        account, created = services.user_get_or_create(username=user)
        if created:
            self.stdout.write(f"created user {user} (no password: set one to use the admin)")
        try:
            services.membership_set(
                organization=organization,
                user=account,
                role=role or _existing_role(organization, account),
                actor=None,
            )
            api_key, plaintext = services.api_key_create(
                organization=organization,
                user=account,
                name=name,
                expires_at=services.api_key_expiry(expires_in_days),
                actor=None,
            )
        except DomainError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"created key {api_key.masked} for {user} in {org}")
        self.stdout.write(plaintext)


def _existing_role(organization, user):
    membership = user.memberships.filter(organization=organization).first()
    return membership.role if membership else None
