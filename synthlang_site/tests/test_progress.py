"""Long commands draw progress on a terminal and print nothing extra anywhere else."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.management import call_command

from common.progress import Progress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream) -> None:
    bar_factory = Progress(stream)
    with bar_factory("encrypting", total=4096, unit="B") as bar:
        for _ in range(4):
            bar.update(1024)
    list(bar_factory.iterate(["a", "b", "c"], "checking"))


def test_a_terminal_gets_a_progress_bar(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    terminal = Terminal()
    _run(terminal)
    drawn = terminal.getvalue()
    assert "encrypting" in drawn and "4.00k" in drawn
    assert "checking" in drawn and "/3 " in drawn


def test_logs_pipes_and_ci_get_nothing(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    pipe = io.StringIO()  # not a terminal: cron, Celery, docker logs
    _run(pipe)
    assert pipe.getvalue() == ""
    monkeypatch.setenv("CI", "true")
    terminal = Terminal()
    _run(terminal)
    assert terminal.getvalue() == ""


@pytest.mark.django_db
def test_the_backup_command_shows_progress_on_stderr_and_keeps_stdout_for_scripts(
    settings, tmp_path, monkeypatch
):
    monkeypatch.delenv("CI", raising=False)
    settings.BACKUP_DIR = tmp_path / "backups"
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = io.StringIO()
    call_command("backup", stdout=out)
    assert "encrypting" in terminal.getvalue()
    last_line = out.getvalue().strip().splitlines()[-1]
    assert last_line.startswith(str(settings.BACKUP_DIR))
    assert "encrypting" not in out.getvalue()

    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    call_command("backup", stdout=io.StringIO())
    assert pipe.getvalue() == ""


@pytest.mark.django_db
def test_the_usage_report_shows_its_steps_on_a_terminal(org_a, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    out = io.StringIO()
    call_command("usage_report", "--org", org_a.slug, "--month", "2026-01", stdout=out)
    assert f"{org_a.slug} 2026-01" in terminal.getvalue() and "/6 " in terminal.getvalue()
    assert out.getvalue().splitlines()[0].startswith("day,user,api_key,model")
    assert progress.stream is None  # the shared instance follows sys.stderr at each call
