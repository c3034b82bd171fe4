from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.crypto import SecretUndecryptable


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the first key of ENCRYPTION_KEY. "
        "Set ENCRYPTION_KEY='new,old', run this, then drop the old key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, dry_run, **options):
        try:
            count = services.secrets_reencrypt(dry_run=dry_run)
        except SecretUndecryptable as error:
            raise CommandError(
                f"{error.message} Add the old key after the new one in ENCRYPTION_KEY."
            ) from None
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        self.stdout.write(f"{verb} {count} secret(s) under the first ENCRYPTION_KEY")
