"""Backups in object storage (BACKUP_STORAGE_URL=s3://bucket/prefix), against a local
S3-compatible server: moto in server mode, started here on its own port and spoken to over
HTTP by the real boto3 client, exactly as MinIO or S3 itself would be."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import Organization
from accounts.services import organization_create
from common import backups
from common.backups import MAGIC
from common.testing import free_port

BUCKET = "synthlang-backups"
PREFIX = "prod/daily"


@pytest.fixture(scope="module")
def s3_server():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3(s3_server, settings, monkeypatch):
    """A fresh bucket, and the settings pointing backups at it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket=BUCKET)
    settings.BACKUP_STORAGE_URL = f"s3://{BUCKET}/{PREFIX}"
    settings.BACKUP_S3_ENDPOINT_URL = s3_server
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(client) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def _stamp(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y%m%dT%H%M%S.%fZ")


def _backup() -> str:
    out = io.StringIO()
    call_command("backup", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


@pytest.mark.django_db(transaction=True)
def test_a_backup_goes_to_the_bucket_encrypted_and_restores_from_there(s3, tmp_path, settings):
    settings.BACKUP_DIR = tmp_path / "local"  # must stay unused
    organization_create(name="Kept Org", slug="kept-org")
    location = _backup()

    name = location.rsplit("/", 1)[1]
    assert location == f"s3://{BUCKET}/{PREFIX}/{name}"
    assert name.startswith(f"synthlang-{connection.vendor}-")
    assert _keys(s3) == [f"{PREFIX}/{name}"]
    stored = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}")["Body"].read()
    assert stored.startswith(MAGIC)
    assert b"kept-org" not in stored  # only ciphertext leaves the machine
    assert not settings.BACKUP_DIR.exists()

    Organization.objects.all().delete()
    organization_create(name="Written After", slug="written-after")
    call_command("restore_backup", "latest", "--yes", stdout=io.StringIO())
    assert set(Organization.objects.values_list("slug", flat=True)) == {"kept-org"}

    Organization.objects.all().delete()
    call_command("restore_backup", location, "--yes", stdout=io.StringIO())  # by its URL
    assert set(Organization.objects.values_list("slug", flat=True)) == {"kept-org"}


@pytest.mark.django_db
def test_retention_and_listing_apply_in_the_bucket(s3, settings):
    settings.BACKUP_RETENTION_DAYS = 30
    old = f"synthlang-{connection.vendor}-{_stamp(31)}.bak"
    recent = f"synthlang-{connection.vendor}-{_stamp(29)}.bak"
    for key in (f"{PREFIX}/{old}", f"{PREFIX}/{recent}", f"{PREFIX}/operator-notes.txt",
                f"elsewhere/{old}"):  # fmt: skip
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")

    new = _backup().rsplit("/", 1)[1]

    assert _keys(s3) == sorted(
        [
            f"{PREFIX}/{recent}",
            f"{PREFIX}/operator-notes.txt",
            f"{PREFIX}/{new}",
            f"elsewhere/{old}",
        ]
    )
    listed = [backup.name for backup in backups.backup_list()]
    assert listed == [new, recent]  # newest first; only backups, only under the prefix
    out = io.StringIO()
    call_command("backup", "--list", stdout=out)
    assert [line.split()[-1] for line in out.getvalue().splitlines()] == [
        f"s3://{BUCKET}/{PREFIX}/{new}",
        f"s3://{BUCKET}/{PREFIX}/{recent}",
    ]


@pytest.mark.django_db
def test_a_store_that_refuses_fails_the_backup_clearly_and_prunes_nothing(s3, settings):
    old = f"{PREFIX}/synthlang-{connection.vendor}-{_stamp(400)}.bak"
    s3.put_object(Bucket=BUCKET, Key=old, Body=b"x")
    settings.BACKUP_STORAGE_URL = "s3://no-such-bucket/prod"
    with pytest.raises(CommandError, match="cannot upload s3://no-such-bucket/prod/.*NoSuchBucket"):
        call_command("backup", stdout=io.StringIO())
    settings.BACKUP_STORAGE_URL = f"s3://{BUCKET}/{PREFIX}"
    assert _keys(s3) == [old]  # a failed backup never deletes the last good ones


@pytest.mark.django_db
def test_restoring_a_backup_the_store_does_not_have_is_refused(s3):
    with pytest.raises(CommandError, match="cannot read s3://"):
        call_command("restore_backup", "synthlang-sqlite-20200101T000000.000000Z.bak", "--yes")
    with pytest.raises(CommandError, match="there is no backup in s3://"):
        call_command("restore_backup", "latest", "--yes")
