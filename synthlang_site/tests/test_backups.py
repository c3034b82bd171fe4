"""Backups restore: round trips on the configured database, refusals that write nothing.

The round trips back up the test database itself, wipe rows, and restore into it
(``transaction=True``: no test transaction holds locks or hides rows from pg_dump, and
pytest-django empties the tables afterwards as usual). The restored schema is the one the
backup was taken from seconds earlier, so the rest of the suite is unaffected. This
exercises the real path an operator uses (connection settings from ``DATABASES``,
``pg_restore`` into the configured database) rather than a side database.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import Organization
from accounts.services import organization_create
from billing.models import MonthlyReport
from common import backups
from synthlang_site.celery import app as celery_app
from synthlang_site.models import TaskRun
from synthlang_site.tasks import backup_run

ON_SQLITE = connection.vendor == "sqlite"
ON_POSTGRES = connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path) -> Path:
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


@pytest.fixture(autouse=True)
def _eager_tasks():
    # Runs the tasks here even when the suite has a broker (CI sets REDIS_URL).
    original = celery_app.conf.task_always_eager  # reading it loads the configuration
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = original


def _backup() -> Path:
    out = io.StringIO()
    call_command("backup", stdout=out)
    path = Path(out.getvalue().strip().splitlines()[-1])
    assert path.is_file()
    return path


def _restore(path: Path, *extra: str) -> str:
    out = io.StringIO()
    call_command("restore_backup", str(path), *extra, stdout=out)
    return out.getvalue()


def _round_trip() -> None:
    organization_create(name="Kept Org", slug="kept-org")
    organization_create(name="Also Kept", slug="also-kept")
    path = _backup()
    assert path.name.startswith(f"synthlang-{connection.vendor}-")

    Organization.objects.all().delete()
    organization_create(name="Written After", slug="written-after")

    _restore(path, "--yes")

    assert set(Organization.objects.values_list("slug", flat=True)) == {"kept-org", "also-kept"}


@pytest.mark.skipif(not ON_SQLITE, reason="the configured database is not SQLite")
@pytest.mark.django_db(transaction=True)
def test_sqlite_backup_restores_wiped_rows():
    _round_trip()


@pytest.mark.skipif(
    not ON_POSTGRES,
    reason="DATABASE_URL is not set: the suite runs on SQLite (CI sets it to PostgreSQL)",
)
@pytest.mark.django_db(transaction=True)
def test_postgresql_backup_restores_wiped_rows():
    _round_trip()


@pytest.mark.django_db
def test_backup_file_is_encrypted_and_named_by_vendor_and_time(backup_dir):
    organization_create(name="Secretive Org", slug="secretive-org")
    path = _backup()
    assert path.parent == backup_dir
    assert path.name.endswith(".bak")
    raw = path.read_bytes()
    assert raw.startswith(backups.MAGIC)
    assert b"secretive-org" not in raw
    assert b"SQLite format" not in raw and b"PGDMP" not in raw


@pytest.mark.django_db
def test_corrupt_backup_is_refused_and_database_untouched():
    path = _backup()
    organization_create(name="After Backup", slug="after-backup")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(CommandError, match="corrupt|cannot be decrypted"):
        _restore(path, "--yes")

    assert Organization.objects.filter(slug="after-backup").exists()


@pytest.mark.django_db
def test_truncated_backup_is_refused():
    path = _backup()
    path.write_bytes(path.read_bytes()[:-200])

    with pytest.raises(CommandError, match="truncated|corrupt"):
        _restore(path, "--yes")


@pytest.mark.django_db
def test_file_that_is_not_a_backup_is_refused(tmp_path):
    path = tmp_path / "notes.bak"
    path.write_bytes(b"just some text")

    with pytest.raises(CommandError, match="not a SynthLang backup"):
        _restore(path, "--dry-run")


@pytest.mark.django_db
def test_backup_under_another_key_is_refused_and_database_untouched(settings):
    path = _backup()
    organization_create(name="After Backup", slug="after-backup")
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(CommandError, match="cannot be decrypted with any key in ENCRYPTION_KEY"):
        _restore(path, "--yes")

    assert Organization.objects.filter(slug="after-backup").exists()


@pytest.mark.django_db
def test_backup_made_before_a_key_rotation_still_decrypts(settings):
    path = _backup()
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.ENCRYPTION_KEYS]

    assert "Would restore" in _restore(path, "--dry-run")


@pytest.mark.django_db
def test_backup_of_another_database_vendor_is_refused(backup_dir):
    other = "postgresql" if ON_SQLITE else "sqlite"
    backup_dir.mkdir(parents=True)
    path = backup_dir / f"synthlang-{other}-20260101T000000.000000Z.bak"
    header = {"format": backups.FORMAT_VERSION, "vendor": other, "database": "x"}
    backups._encrypt_to(path, header=header, chunks=iter([b"not a dump"]))

    with pytest.raises(CommandError, match=f"is a {other} backup but the configured database"):
        _restore(path, "--yes")


@pytest.mark.django_db
def test_backup_of_a_newer_format_is_refused(backup_dir):
    backup_dir.mkdir(parents=True)
    path = backup_dir / "future.bak"
    header = {"format": backups.FORMAT_VERSION + 1, "vendor": connection.vendor}
    backups._encrypt_to(path, header=header, chunks=iter([b""]))

    with pytest.raises(CommandError, match="backup format 2 but this release reads format 1"):
        _restore(path, "--dry-run")


@pytest.mark.django_db
def test_restore_dry_run_changes_nothing():
    path = _backup()
    organization_create(name="After Backup", slug="after-backup")

    output = _restore(path, "--dry-run")

    assert "Would restore" in output and "Nothing was changed" in output
    assert Organization.objects.filter(slug="after-backup").exists()


@pytest.mark.django_db
def test_restore_without_yes_and_without_a_terminal_changes_nothing():
    path = _backup()
    organization_create(name="After Backup", slug="after-backup")

    with pytest.raises(CommandError, match="cancelled"):
        call_command("restore_backup", str(path), interactive=False, stdout=io.StringIO())

    assert Organization.objects.filter(slug="after-backup").exists()


def _stamp(days_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    return moment.strftime("%Y%m%dT%H%M%S.%fZ")


@pytest.mark.django_db
def test_backup_prunes_backups_older_than_the_retention(settings, backup_dir):
    settings.BACKUP_RETENTION_DAYS = 30
    backup_dir.mkdir(parents=True)
    old = backup_dir / f"synthlang-{connection.vendor}-{_stamp(31)}.bak"
    recent = backup_dir / f"synthlang-{connection.vendor}-{_stamp(29)}.bak"
    unrelated = backup_dir / "operator-notes.txt"
    for path in (old, recent, unrelated):
        path.write_bytes(b"x")

    new = _backup()

    assert not old.exists()
    assert recent.exists() and unrelated.exists() and new.exists()


@pytest.mark.django_db
def test_backup_dry_run_writes_nothing(settings, backup_dir):
    out = io.StringIO()
    call_command("backup", "--dry-run", stdout=out)

    assert "Would back up" in out.getvalue()
    assert not backup_dir.exists()

    backup_dir.mkdir(parents=True)
    old = backup_dir / f"synthlang-{connection.vendor}-{_stamp(400)}.bak"
    old.write_bytes(b"x")
    out = io.StringIO()
    call_command("backup", "--dry-run", stdout=out)

    assert f"Would prune {old}" in out.getvalue()
    assert list(backup_dir.iterdir()) == [old]


@pytest.mark.django_db
def test_backup_task_records_a_successful_run(backup_dir):
    backup_run.delay()

    run = TaskRun.objects.get()
    assert run.task_name == "backup"
    assert run.status == TaskRun.Status.SUCCEEDED
    assert run.started_at and run.finished_at
    written = next(backup_dir.iterdir())
    assert written.name in run.result_summary


@pytest.mark.django_db
def test_backup_task_records_a_failed_run(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.BACKUP_DIR = blocker / "backups"  # cannot be created under a file

    with pytest.raises(OSError):
        backup_run.delay()

    run = TaskRun.objects.get()
    assert run.status == TaskRun.Status.FAILED
    assert run.error and not run.result_summary


@pytest.mark.django_db
def test_a_claimed_task_run_is_not_run_twice(backup_dir):
    run = TaskRun.objects.create(task_name="backup", status=TaskRun.Status.SUCCEEDED)

    backup_run.delay(task_run_id=run.pk)

    assert not backup_dir.exists()


# --- The admin ---------------------------------------------------------------------------


@pytest.fixture
def root(db, django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "root-pw-1")


@pytest.mark.django_db
def test_platform_staff_start_a_backup_from_the_admin(
    client, root, backup_dir, django_capture_on_commit_callbacks
):
    client.force_login(root)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/synthlang_site/taskrun/start-backup/")

    assert response.status_code == 302
    run = TaskRun.objects.get()
    assert run.requested_by == root and run.status == TaskRun.Status.SUCCEEDED
    assert len(list(backup_dir.iterdir())) == 1
    listing = client.get("/admin/synthlang_site/taskrun/")
    assert listing.status_code == 200
    assert "Start a backup" in listing.content.decode()
    assert run.result_summary in listing.content.decode()


@pytest.mark.django_db
def test_platform_staff_start_the_monthly_reports_from_the_admin(
    client, root, org_a, org_b, django_capture_on_commit_callbacks
):
    client.force_login(root)

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/synthlang_site/taskrun/start-monthly-reports/", {"month": "2026-01"})

    run = TaskRun.objects.get()
    assert run.status == TaskRun.Status.SUCCEEDED
    assert "2 organization(s) for 2026-01" in run.result_summary
    assert MonthlyReport.objects.filter(month__year=2026, month__month=1).count() == 2


@pytest.mark.django_db
def test_a_get_never_starts_a_job(client, root, backup_dir):
    client.force_login(root)

    response = client.get("/admin/synthlang_site/taskrun/start-backup/")

    assert response.status_code == 405
    assert not TaskRun.objects.exists()


@pytest.mark.django_db
def test_organization_admins_see_no_task_runs_and_start_nothing(client, alice, backup_dir):
    TaskRun.objects.create(task_name="backup", result_summary="platform secret summary")
    client.force_login(alice)
    assert alice.is_staff  # the admin is open to them, just not this page

    assert client.get("/admin/synthlang_site/taskrun/").status_code == 403
    assert client.post("/admin/synthlang_site/taskrun/start-backup/").status_code == 403
    assert client.post("/admin/synthlang_site/taskrun/start-monthly-reports/").status_code == 403
    index = client.get("/admin/").content.decode()
    assert "Task runs" not in index and "platform secret summary" not in index
    assert TaskRun.objects.count() == 1 and not backup_dir.exists()


def test_header_is_inside_the_encrypted_payload(settings, tmp_path):
    path = tmp_path / "x.bak"
    header = {"format": backups.FORMAT_VERSION, "vendor": "sqlite", "database": "marker-name"}
    backups._encrypt_to(path, header=header, chunks=iter([b"payload"]))

    assert b"marker-name" not in path.read_bytes()
    assert json.dumps(header).encode() not in path.read_bytes()
