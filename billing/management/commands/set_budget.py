from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from accounts.models import ApiKey, Organization, User
from billing import services
from billing.pricing import micros_to_usd, usd_to_micros
from common.errors import DomainError


def _usd(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"{option} must be a number of dollars, got {value!r}") from None
    if amount < 0:
        raise CommandError(f"{option} cannot be negative")
    return usd_to_micros(amount)


class Command(BaseCommand):
    help = (
        "Set the monthly budget of an organization, one of its members (--user) or one of "
        "its keys (--key PREFIX). --monthly-usd is the hard limit (0 blocks every paid "
        "request); --soft-usd raises an alert once a month."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        target = parser.add_mutually_exclusive_group()
        target.add_argument("--user", help="username of a member")
        target.add_argument("--key", help="API key prefix (the 8 characters after sk-syn-)")
        parser.add_argument("--monthly-usd", required=True, help="hard monthly limit in dollars")
        parser.add_argument("--soft-usd", help="soft limit in dollars (alert once a month)")
        parser.add_argument("--webhook-url", help="URL POSTed when a limit is reached")

    def handle(self, *args, org, user, key, monthly_usd, soft_usd, webhook_url, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"no organization {org!r}")
        member = api_key = None
        if user:
            member = User.objects.filter(username=user).first()
            if member is None:
                raise CommandError(f"no user {user!r}")
        if key:
            prefix = key.removeprefix("sk-syn-")[:8]
            api_key = ApiKey.objects.filter(organization=organization, prefix=prefix).first()
            if api_key is None:
                raise CommandError(f"no API key with prefix {prefix!r} in {org}")
        try:
            budget = services.budget_set(
                organization=organization,
                user=member,
                api_key=api_key,
                monthly_limit_micros=_usd(monthly_usd, "--monthly-usd"),
                soft_limit_micros=_usd(soft_usd, "--soft-usd"),
                webhook_url=webhook_url,
                actor=None,
            )
        except DomainError as error:
            raise CommandError(error.message) from None
        soft = (
            f", soft ${micros_to_usd(budget.soft_limit_micros)}"
            if budget.soft_limit_micros is not None
            else ""
        )
        self.stdout.write(
            f"budget for {budget}: ${micros_to_usd(budget.monthly_limit_micros)} a month{soft}"
        )
