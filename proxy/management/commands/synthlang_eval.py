"""Measure SynthLang compression on labelled prompt sets and print the table per set and level."""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from proxy.synthlang.engine import DEFAULT_ROLES, LEVELS
from proxy.synthlang.evaluation import (
    DatasetError,
    ceiling_report,
    evaluate,
    format_ceiling,
    format_lossless_ceiling,
    format_report,
    load_dataset,
    lossless_ceiling_report,
)
from proxy.tokens import CL100K, O200K

# The sets reported when no --dataset is named: the dev sets kept beside the checkout and the
# held-out sets committed in eval/. Missing files are skipped with a note.
STANDARD_DATASETS = (
    "../shared/eval/compression_dev.jsonl",
    "../shared/eval/agent_traces_dev.jsonl",
    "eval/compression_heldout.jsonl",
    "eval/agent_traces_heldout.jsonl",
)


class Command(BaseCommand):
    help = (
        "Compress every conversation of one or more JSONL datasets and report, per kind and "
        "overall, the median and mean token reduction (cl100k_base, o200k_base), must_keep "
        "strings lost, messages emptied and prompts grown."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dataset",
            action="append",
            help="JSONL file of conversations; repeat for several (default: the dev sets in "
            "../shared/eval/ and the held-out sets in eval/)",
        )
        parser.add_argument(
            "--level", default="low", choices=[level for level in LEVELS if level != "off"]
        )
        parser.add_argument(
            "--all-levels", action="store_true", help="report low, medium and high in turn"
        )
        parser.add_argument(
            "--ceiling",
            action="store_true",
            help="also print the most any rewrite keeping the protected spans, or only the "
            "must_keep strings, could save; for agent traces, also the lossless ceiling",
        )
        parser.add_argument(
            "--roles",
            default=",".join(DEFAULT_ROLES),
            help="comma-separated roles whose prose is compressed (default: system,user)",
        )
        parser.add_argument(
            "--tool-results",
            choices=("on", "off"),
            default="on",
            help="compress tool results and tool-call arguments (default: on, as for a new "
            "organization)",
        )
        parser.add_argument("--quiet-losses", action="store_true", help="do not list losses")

    def handle(self, *args, **options):
        paths = options["dataset"] or [
            str(Path(settings.BASE_DIR) / path) for path in STANDARD_DATASETS
        ]
        datasets = []
        for path in paths:
            if not options["dataset"] and not Path(path).exists():
                self.stdout.write(f"(skipped {path}: not found)")
                continue
            try:
                datasets.append((path, load_dataset(path)))
            except (OSError, DatasetError) as error:
                raise CommandError(f"cannot read dataset: {error}") from error
        if not datasets:
            raise CommandError("no dataset to evaluate")
        roles = tuple(role.strip() for role in options["roles"].split(",") if role.strip())
        levels = ("low", "medium", "high") if options["all_levels"] else (options["level"],)
        tool_results = options["tool_results"] == "on"
        # Progress goes to stderr, and only for a person watching: a pipe or a log file gets
        # the tables alone.
        show_progress = self.stdout.isatty()
        first = True
        for path, items in datasets:
            title = Path(path).name
            for level in levels:
                progress = self._progress(title, level) if show_progress else None
                report = evaluate(
                    items, level=level, roles=roles, progress=progress, tool_results=tool_results
                )
                if progress is not None:
                    sys.stderr.write("\r\033[K")
                if not first:
                    self.stdout.write("")
                first = False
                self.stdout.write(
                    format_report(report, title=title, show_losses=not options["quiet_losses"])
                )
            if options["ceiling"]:
                self.stdout.write("")
                self.stdout.write(format_ceiling(ceiling_report(items, roles=roles), roles=roles))
                if any(
                    message.get("role") == "tool" for item in items for message in item["messages"]
                ):
                    for encoding in (O200K, CL100K):
                        self.stdout.write("")
                        self.stdout.write(
                            format_lossless_ceiling(
                                lossless_ceiling_report(items, encoding=encoding), encoding=encoding
                            )
                        )

    @staticmethod
    def _progress(title: str, level: str):
        def report(done: int, total: int) -> None:
            sys.stderr.write(f"\r{title} {level}: {done}/{total}")
            sys.stderr.flush()

        return report
