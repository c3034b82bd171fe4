from django.core.management.base import BaseCommand, CommandError

from common import backups
from common.progress import progress


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump or SQLite's backup API), compressed and encrypted "
        "with ENCRYPTION_KEY, into BACKUP_STORAGE_URL (s3://bucket/prefix) or BACKUP_DIR; "
        "then prune backups older than BACKUP_RETENTION_DAYS there."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="show what would be written and pruned"
        )
        parser.add_argument(
            "--list",
            action="store_true",
            dest="list_backups",
            help="list the stored backups, newest first",
        )

    def handle(self, *args, dry_run: bool = False, list_backups: bool = False, **options):
        try:
            if list_backups:
                for backup in backups.backup_list():
                    self.stdout.write(f"{backup.taken_at:%Y-%m-%d %H:%M:%S} UTC  {backup.location}")
                return
            if dry_run:
                plan = backups.backup_plan()
                old = backups.backup_prune(dry_run=True)
                self.stdout.write(
                    f"Would back up the {plan.vendor} database {plan.database} to {plan.location}"
                )
                for location in old:
                    self.stdout.write(f"Would prune {location}")
                return
            result = backups.backup_create(progress=progress)
        except backups.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Backed up the {result.vendor} database {result.database} to {result.location} "
            f"({result.size_bytes} bytes)"
        )
        for location in result.pruned:
            self.stdout.write(f"Pruned {location}")
        # The location alone on the last line, for scripts.
        self.stdout.write(result.location)
