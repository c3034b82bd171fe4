"""Show the request pipeline's active stages (``SYNTHLANG_STAGES``), in the order they run
on a request; answers run through them in reverse."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from proxy.pipeline.registry import active_stages


class Command(BaseCommand):
    help = "List the active pipeline stages in request order, with the endpoints each acts on."

    def handle(self, *args, **options):
        stages = active_stages()  # a bad entry fails here, naming it
        if not stages:
            self.stdout.write("No stages: requests go from admission straight upstream.")
            return
        for position, (stage, path) in enumerate(
            zip(stages, settings.SYNTHLANG_STAGES, strict=True), start=1
        ):
            endpoints = ", ".join(sorted(stage.endpoints))
            self.stdout.write(f"{position}. {stage.name:<14} {path}  [{endpoints}]")
