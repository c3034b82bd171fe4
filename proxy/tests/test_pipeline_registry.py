"""The stage list: read from settings in order, overridden by the environment, and a bad
entry refused with a message naming it."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from proxy.pipeline.registry import active_stages, stages_for

STAGES = "proxy.tests.pipeline_stages."


def test_stages_are_loaded_once_in_the_listed_order(settings):
    settings.SYNTHLANG_STAGES = [STAGES + "Shouter", STAGES + "Refuser"]
    first = active_stages()
    settings.SYNTHLANG_STAGES = [STAGES + "Refuser", STAGES + "Shouter"]
    second = active_stages()

    assert [stage.name for stage in first] == ["shouter", "refuser"]
    assert [stage.name for stage in second] == ["refuser", "shouter"]
    settings.SYNTHLANG_STAGES = [STAGES + "Shouter", STAGES + "Refuser"]
    assert active_stages()[0] is first[0]  # instantiated once per list, not per request


def test_only_the_stages_of_an_endpoint_run_on_it(settings):
    settings.SYNTHLANG_STAGES = [STAGES + "Shouter"]

    assert [stage.name for stage in stages_for("chat.completions")] == ["shouter"]
    assert stages_for("embeddings") == ()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "proxy.tests.pipeline_stages.Missing",
            "cannot import 'proxy.tests.pipeline_stages.Missing'",
        ),
        ("no_such_module.Stage", "cannot import 'no_such_module.Stage'"),
        ("proxy.tests.pipeline_stages.not_a_stage", "is not a proxy.pipeline.stage.Stage"),
        ("proxy.tests.pipeline_stages.Nameless", "has no name"),
    ],
)
def test_a_bad_entry_is_refused_with_a_message_naming_it(settings, path, message):
    settings.SYNTHLANG_STAGES = [path]

    with pytest.raises(ImproperlyConfigured, match=message):
        active_stages()


def test_two_stages_with_one_name_are_refused(settings):
    settings.SYNTHLANG_STAGES = [STAGES + "Shouter", STAGES + "Shouter"]

    with pytest.raises(ImproperlyConfigured, match="two stages are named shouter"):
        active_stages()


def test_the_environment_replaces_the_list():
    environment = {
        **os.environ,
        "DEBUG": "true",
        "SYNTHLANG_STAGES": f" {STAGES}Refuser , {STAGES}Shouter ",
    }
    script = (
        "import django; django.setup();"
        "from proxy.pipeline.registry import active_stages;"
        "print(','.join(stage.name for stage in active_stages()))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=django_settings.BASE_DIR,
        env={**environment, "DJANGO_SETTINGS_MODULE": "synthlang_site.settings"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert completed.stdout.strip().splitlines()[-1] == "refuser,shouter"


def test_the_command_lists_the_default_stages_in_request_order():
    out = io.StringIO()
    call_command("synthlang_stages", stdout=out)

    names = [line.split()[1] for line in out.getvalue().splitlines()]
    assert names == [
        "prompts",
        "tools",
        "rules",
        "pii",
        "moderation",
        "cache",
        "budget",
        "translate",
        "compression",
    ]
