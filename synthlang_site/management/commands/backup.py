from django.core.management.base import BaseCommand, CommandError

from common import backups


class Command(BaseCommand):
    help = (
        "Back up the database (pg_dump or SQLite's backup API), compressed and encrypted "
        "with ENCRYPTION_KEY, into BACKUP_DIR; then prune backups older than "
        "BACKUP_RETENTION_DAYS."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="show what would be written and pruned"
        )

    def handle(self, *args, dry_run: bool = False, **options):
        try:
            if dry_run:
                plan = backups.backup_plan()
                old = backups.backup_prune(dry_run=True)
                self.stdout.write(
                    f"Would back up the {plan.vendor} database {plan.database} to {plan.path}"
                )
                for path in old:
                    self.stdout.write(f"Would prune {path}")
                return
            result = backups.backup_create()
        except backups.BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Backed up the {result.vendor} database {result.database} to {result.path} "
            f"({result.size_bytes} bytes)"
        )
        for path in result.pruned:
            self.stdout.write(f"Pruned {path}")
        # The path alone on the last line, for scripts.
        self.stdout.write(str(result.path))
