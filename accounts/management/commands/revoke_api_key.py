from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key by its lookup prefix (the 8 characters after 'sk-syn-')."

    def add_arguments(self, parser):
        parser.add_argument("--prefix", required=True)
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, prefix, dry_run, **options):
        prefix = prefix.removeprefix("sk-syn-")[:8]
        api_key = ApiKey.objects.select_related("organization").filter(prefix=prefix).first()
        if api_key is None:
            raise CommandError(f"no API key with prefix {prefix}")
        if dry_run:
            self.stdout.write(f"would revoke {api_key.masked} of {api_key.organization.slug}")
            return
        services.api_key_revoke(api_key=api_key, actor=None)
        self.stdout.write(f"revoked {api_key.masked} of {api_key.organization.slug}")
