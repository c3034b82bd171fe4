from django.core.management.base import BaseCommand, CommandError

from common import backups
from common.progress import progress


class Command(BaseCommand):
    help = (
        "Restore a backup made by `backup` into the configured database, replacing its "
        "contents. The backup is a file, an s3://bucket/key, or the name of one in "
        "BACKUP_STORAGE_URL (`latest` for the newest). It is decrypted (any key in "
        "ENCRYPTION_KEY) and checked in full before anything is written."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "path", help="a .bak file, s3://bucket/key, a backup's name in the store, or latest"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="check the backup and report; write nothing"
        )
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="never prompt: without --yes, refuse to restore",
        )

    def handle(self, *args, path: str, dry_run: bool = False, yes: bool = False, **options):
        try:
            with backups.backup_fetched(path, progress=progress) as local:
                self._restore(local, dry_run=dry_run, yes=yes, options=options)
        except backups.BackupError as error:
            raise CommandError(str(error)) from None

    def _restore(self, local, *, dry_run: bool, yes: bool, options) -> None:
        # Always checked first: a bad file is refused before the operator is asked.
        checked = backups.backup_restore(path=local, dry_run=True, progress=progress)
        description = (
            f"{checked.name}: {checked.vendor} backup taken {checked.created_at}, "
            f"{checked.dump_bytes} bytes of dump, into the database {checked.database}"
        )
        if dry_run:
            self.stdout.write(f"Would restore {description}. Nothing was changed.")
            return
        if not yes and not self._confirmed(description, options):
            raise CommandError("Restore cancelled; nothing was changed.")
        result = backups.backup_restore(path=local, progress=progress)
        self.stdout.write(f"Restored {result.name} into the database {result.database}.")

    def _confirmed(self, description: str, options) -> bool:
        if not options.get("interactive", True):
            return False
        answer = input(f"Replace every row of the database with {description}? Type 'yes': ")
        return answer.strip().lower() == "yes"
