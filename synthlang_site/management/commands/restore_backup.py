from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from common import backups


class Command(BaseCommand):
    help = (
        "Restore a backup made by `backup` into the configured database, replacing its "
        "contents. The file is decrypted (any key in ENCRYPTION_KEY) and checked in full "
        "before anything is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="the .bak file")
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

    def handle(self, *args, path: Path, dry_run: bool = False, yes: bool = False, **options):
        try:
            # Always checked first: a bad file is refused before the operator is asked.
            checked = backups.backup_restore(path=path, dry_run=True)
        except backups.BackupError as error:
            raise CommandError(str(error)) from None
        description = (
            f"{checked.path.name}: {checked.vendor} backup taken {checked.created_at}, "
            f"{checked.dump_bytes} bytes of dump, into the database {checked.database}"
        )
        if dry_run:
            self.stdout.write(f"Would restore {description}. Nothing was changed.")
            return
        if not yes and not self._confirmed(description, options):
            raise CommandError("Restore cancelled; nothing was changed.")
        try:
            result = backups.backup_restore(path=path)
        except backups.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Restored {result.path.name} into the database {result.database}.")

    def _confirmed(self, description: str, options) -> bool:
        if not options.get("interactive", True):
            return False
        answer = input(f"Replace every row of the database with {description}? Type 'yes': ")
        return answer.strip().lower() == "yes"
