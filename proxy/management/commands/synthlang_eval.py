"""Measure SynthLang compression on a labelled prompt set and print the table per level."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from proxy.synthlang.engine import DEFAULT_ROLES, LEVELS
from proxy.synthlang.evaluation import (
    DatasetError,
    ceiling_report,
    evaluate,
    format_ceiling,
    format_report,
    load_dataset,
)


class Command(BaseCommand):
    help = (
        "Compress every prompt of a JSONL dataset and report, per kind and overall, the median "
        "token reduction (cl100k_base, o200k_base), must_keep strings kept and prompts grown."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="JSONL file of prompts")
        parser.add_argument(
            "--level", default="medium", choices=[level for level in LEVELS if level != "off"]
        )
        parser.add_argument(
            "--all-levels", action="store_true", help="report low, medium and high in turn"
        )
        parser.add_argument(
            "--ceiling",
            action="store_true",
            help="also print the most any rewrite keeping the protected spans, or only the "
            "must_keep strings, could save",
        )
        parser.add_argument(
            "--roles",
            default=",".join(DEFAULT_ROLES),
            help="comma-separated roles to compress (default: system,user)",
        )

    def handle(self, *args, **options):
        try:
            items = load_dataset(options["dataset"])
        except (OSError, DatasetError) as error:
            raise CommandError(f"cannot read dataset: {error}") from error
        roles = tuple(role.strip() for role in options["roles"].split(",") if role.strip())
        levels = ("low", "medium", "high") if options["all_levels"] else (options["level"],)
        for index, level in enumerate(levels):
            report = evaluate(items, level=level, roles=roles)
            if index:
                self.stdout.write("")
            self.stdout.write(format_report(report))
        if options["ceiling"]:
            self.stdout.write("")
            self.stdout.write(format_ceiling(ceiling_report(items, roles=roles), roles=roles))
