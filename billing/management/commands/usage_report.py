import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from billing import reports
from common.progress import progress


class Command(BaseCommand):
    help = "Print an organization's usage and cost for one month (UTC) as CSV or JSON."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--month", required=True, help="YYYY-MM")
        parser.add_argument("--format", choices=["csv", "json"], default="csv")

    def handle(self, *args, org, month, format, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"no organization {org!r}")
        try:
            first_day = datetime.strptime(month, "%Y-%m").date()  # noqa: DTZ007 - a calendar month
        except ValueError:
            raise CommandError(f"--month must be YYYY-MM, got {month!r}") from None
        report = reports.month_report(
            organization_id=organization.pk, month=first_day, progress=progress
        )
        if format == "json":
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            self.stdout.write(reports.month_report_csv(report), ending="")
