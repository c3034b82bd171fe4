"""Encrypted database backups, where they are kept, and their restore (no HTTP, no models).

A backup is the database's dump (``pg_dump --format=custom`` or an SQLite database file),
gzip-compressed and encrypted in authenticated frames (common/backup_format.py), named
``synthlang-<vendor>-<UTC time>.bak`` and kept in a directory or in object storage
(common/backup_storage.py, ``BACKUP_STORAGE_URL``). Retention, listing and restore work
wherever the backups are.

Restore decrypts and checks everything (header, every frame, gzip's CRC, the dump
itself) into a private temporary file before it writes anything to the database.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings

from common.backup_format import (
    CHUNK_BYTES,
    FORMAT_VERSION,
    MAGIC,
    BackupError,
    decrypt_to,
    encrypt_to,
)
from common.backup_storage import StorageError, storage_from_settings, storage_from_url
from common.progress import Progress, silent

_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_NAME = re.compile(r"^synthlang-(?P<vendor>[a-z0-9]+)-(?P<stamp>\d{8}T\d{6}\.\d{6}Z)\.bak$")
_ENGINE_VENDORS = {
    "django.db.backends.postgresql": "postgresql",
    "common.postgresql": "postgresql",  # the same backend behind the connection pool
    "django.db.backends.sqlite3": "sqlite",
}


@dataclass(frozen=True)
class BackupPlan:
    name: str
    location: str  # a path, or s3://bucket/prefix/name
    vendor: str
    database: str


@dataclass(frozen=True)
class BackupResult:
    name: str
    location: str
    vendor: str
    database: str
    size_bytes: int
    pruned: tuple[str, ...]  # the locations deleted by retention


@dataclass(frozen=True)
class StoredBackup:
    name: str
    location: str
    vendor: str
    taken_at: datetime


@dataclass(frozen=True)
class RestoreResult:
    name: str
    vendor: str
    database: str
    created_at: str
    dump_bytes: int
    restored: bool


# --- Public services -----------------------------------------------------------------


def backup_plan(*, now: datetime | None = None) -> BackupPlan:
    """Where the next backup goes and what it contains; touches nothing."""
    now = now or datetime.now(UTC)
    config = settings.DATABASES["default"]
    vendor = _vendor(config)
    name = f"synthlang-{vendor}-{now.strftime(_TIMESTAMP_FORMAT)}.bak"
    location = storage_from_settings().location(name)
    return BackupPlan(name=name, location=location, vendor=vendor, database=str(config["NAME"]))


def backup_create(*, now: datetime | None = None, progress: Progress = silent) -> BackupResult:
    """Dump the default database, compress, encrypt and store it; then prune old backups.

    A local store gets the file written in place; object storage gets it uploaded from a
    private temporary file, which is removed afterwards.
    """
    now = now or datetime.now(UTC)
    plan = backup_plan(now=now)
    storage = storage_from_settings()
    config = settings.DATABASES["default"]
    header = {
        "format": FORMAT_VERSION,
        "vendor": plan.vendor,
        "database": plan.database,
        "created_at": now.isoformat(),
    }
    with tempfile.TemporaryDirectory(prefix="synthlang-backup-out-") as workdir:
        in_place = storage.local_path(plan.name)
        target = in_place or Path(workdir) / plan.name
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed, so a crash never leaves a file that
        # looks like a complete backup (and retention never counts a half-written one).
        partial = target.with_name(target.name + ".partial")
        try:
            with (
                _dump_stream(plan.vendor, config) as dump,
                progress("encrypting", total=dump.size, unit="B") as bar,
            ):
                encrypt_to(partial, header=header, chunks=dump.chunks(bar.update))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        size = target.stat().st_size
        if in_place is None:
            with progress("uploading", total=size, unit="B") as bar:
                try:
                    size = storage.upload(target, plan.name, transferred=bar.update)
                except StorageError as error:
                    raise BackupError(str(error)) from None
    pruned = backup_prune(now=now)
    return BackupResult(
        name=plan.name,
        location=plan.location,
        vendor=plan.vendor,
        database=plan.database,
        size_bytes=size,
        pruned=tuple(pruned),
    )


def backup_list() -> list[StoredBackup]:
    """The backups in the configured store, newest first (judged by their names)."""
    storage = storage_from_settings()
    try:
        names = storage.names()
    except StorageError as error:
        raise BackupError(str(error)) from None
    found = []
    for name in names:
        match = _NAME.match(name)
        if match:
            taken_at = datetime.strptime(match["stamp"], _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
            found.append(
                StoredBackup(
                    name=name,
                    location=storage.location(name),
                    vendor=match["vendor"],
                    taken_at=taken_at,
                )
            )
    return sorted(found, key=lambda backup: backup.taken_at, reverse=True)


def backup_prune(*, now: datetime | None = None, dry_run: bool = False) -> list[str]:
    """Delete backups older than ``BACKUP_RETENTION_DAYS``, judged by the name's timestamp.

    The name, not the file's mtime: copying a backup around (restoring it from cold
    storage) must not make it look new. Returns the locations deleted (or to delete).
    """
    storage = storage_from_settings()
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.BACKUP_RETENTION_DAYS)
    old = [backup for backup in backup_list() if backup.taken_at < cutoff]
    if not dry_run:
        for backup in old:
            try:
                storage.delete(backup.name)
            except StorageError as error:
                raise BackupError(str(error)) from None
    return [backup.location for backup in sorted(old, key=lambda backup: backup.name)]


@contextlib.contextmanager
def backup_fetched(source: str | Path, *, progress: Progress = silent) -> Iterator[Path]:
    """A local copy of a backup to read: ``source`` is a file, ``s3://bucket/key``, or the
    name of a backup in the configured store (``latest`` for the newest one)."""
    source = str(source)
    local = Path(source)
    if not source.startswith("s3://") and (local.is_file() or "/" in source):
        yield local
        return
    if source.startswith("s3://"):
        folder, _, name = source.rpartition("/")
        storage = storage_from_url(folder)
    else:
        storage, name = storage_from_settings(), source
        if name == "latest":
            newest = backup_list()
            if not newest:
                raise BackupError(f"there is no backup in {storage.location('')}")
            name = newest[0].name
    in_place = storage.local_path(name)
    if in_place is not None:
        yield in_place
        return
    with tempfile.TemporaryDirectory(prefix="synthlang-backup-in-") as workdir:
        target = Path(workdir) / name
        try:
            with progress("downloading", total=storage.size(name), unit="B") as bar:
                storage.download(name, target, transferred=bar.update)
        except StorageError as error:
            raise BackupError(str(error)) from None
        yield target


def backup_restore(
    *, path: Path, dry_run: bool = False, progress: Progress = silent
) -> RestoreResult:
    """Restore the backup file ``path`` into the default database, or with ``dry_run``
    only check it (``backup_fetched`` brings one from object storage first).

    Every check runs before the first write: a wrong key, a corrupt or truncated file
    or a backup of another database vendor raises ``BackupError`` and the database is
    untouched.
    """
    path = Path(path)
    config = settings.DATABASES["default"]
    vendor = _vendor(config)
    with tempfile.TemporaryDirectory(prefix="synthlang-restore-") as workdir:
        dump_path = Path(workdir) / "dump"
        size = path.stat().st_size if path.is_file() else None
        with progress("decrypting", total=size, unit="B") as bar:
            header = decrypt_to(path, dump_path, read=bar.update)
        if header.get("vendor") != vendor:
            raise BackupError(
                f"{path.name} is a {header.get('vendor')} backup but the configured database "
                f"is {vendor}; refusing to restore it."
            )
        _verify_dump(vendor, dump_path, config)
        if not dry_run:
            with progress("restoring", total=None, unit="step") as bar:
                _restore_dump(vendor, dump_path, config)
                bar.update(1)
        return RestoreResult(
            name=path.name,
            vendor=vendor,
            database=str(config["NAME"]),
            created_at=str(header.get("created_at", "")),
            dump_bytes=dump_path.stat().st_size,
            restored=not dry_run,
        )


# --- Dumping and restoring each vendor -------------------------------------------------


def _vendor(config: Mapping) -> str:
    vendor = _ENGINE_VENDORS.get(config["ENGINE"])
    if vendor is None:
        raise BackupError(f"backups do not support the database engine {config['ENGINE']}.")
    return vendor


def _pg_env(config: Mapping) -> dict[str, str]:
    # Connection details go through libpq's environment: a password on the command
    # line would be visible to every user of the machine in the process list.
    env = dict(os.environ)
    values = {
        "PGHOST": config.get("HOST"),
        "PGPORT": config.get("PORT"),
        "PGUSER": config.get("USER"),
        "PGPASSWORD": config.get("PASSWORD"),
        "PGDATABASE": config.get("NAME"),
        "PGSSLMODE": (config.get("OPTIONS") or {}).get("sslmode"),
        "PGCONNECT_TIMEOUT": str((config.get("OPTIONS") or {}).get("connect_timeout") or ""),
    }
    for key, value in values.items():
        if value:
            env[key] = str(value)
        else:
            env.pop(key, None)
    return env


def _run(command: list[str], config: Mapping, what: str) -> None:
    program = shutil.which(command[0])
    if program is None:
        raise BackupError(f"{command[0]} is not installed; it is needed to {what}.")
    completed = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [program, *command[1:]], env=_pg_env(config), capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise BackupError(f"{command[0]} failed to {what}: {completed.stderr.strip()[-2000:]}")


class _dump_stream:
    """Context manager yielding the dump: its ``size`` and its ``chunks()``."""

    def __init__(self, vendor: str, config: Mapping):
        self.vendor = vendor
        self.config = config
        self.workdir: tempfile.TemporaryDirectory | None = None
        self.path: Path | None = None
        self.size = 0

    def __enter__(self) -> _dump_stream:
        self.workdir = tempfile.TemporaryDirectory(prefix="synthlang-backup-")
        self.path = Path(self.workdir.name) / "dump"
        if self.vendor == "postgresql":
            # Uncompressed custom format: gzip compresses it once, on our side.
            _run(
                [
                    "pg_dump",
                    "--format=custom",
                    "--compress=0",
                    "--no-password",
                    "-f",
                    str(self.path),
                ],
                self.config,
                "dump the database",
            )
        else:
            _sqlite_copy(Path(self.config["NAME"]), self.path)
        self.size = self.path.stat().st_size
        return self

    def chunks(self, read=None) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                if read is not None:
                    read(len(chunk))
                yield chunk

    def __exit__(self, *exc_info) -> None:
        if self.workdir is not None:
            self.workdir.cleanup()


def _read_only_uri(path: Path) -> str:
    # as_uri() percent-encodes the path, so a "?" or "#" in it cannot become a parameter.
    return path.resolve().as_uri() + "?mode=ro"


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy with SQLite's online backup API: consistent even while others write."""
    if not source.exists():
        raise BackupError(f"the SQLite database {source} does not exist.")
    src = sqlite3.connect(_read_only_uri(source), uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _verify_dump(vendor: str, dump_path: Path, config: Mapping) -> None:
    if vendor == "postgresql":
        # Reads the archive's table of contents: a damaged archive fails here.
        _run(["pg_restore", "--list", str(dump_path)], config, "read the backup's archive")
        return
    try:
        connection = sqlite3.connect(_read_only_uri(dump_path), uri=True)
        try:
            result = connection.execute("PRAGMA integrity_check").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"the backup's SQLite database is damaged: {error}") from None
    if not result or result[0] != "ok":
        raise BackupError(f"the backup's SQLite database is damaged: {result}")


def _restore_dump(vendor: str, dump_path: Path, config: Mapping) -> None:
    from django.db import connections

    # Django's own connection must not hold locks (or a stale SQLite page cache) while
    # the database is replaced under it; it reconnects on the next query.
    connections["default"].close()
    if vendor == "postgresql":
        # One transaction: if anything fails, PostgreSQL rolls the whole restore back
        # and the database is as it was.
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                "--no-password",
                "--dbname",
                str(config["NAME"]),
                str(dump_path),
            ],
            config,
            "restore the database",
        )
        return
    # The backup API copies every page into the live file inside one write transaction:
    # other connections see the old database or the new one, never a mixture.
    src = sqlite3.connect(_read_only_uri(dump_path), uri=True)
    dst = sqlite3.connect(Path(config["NAME"]), timeout=30)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


# The format's names that callers (and the tests) reach through this module.
_encrypt_to = encrypt_to

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "BackupError",
    "BackupPlan",
    "BackupResult",
    "RestoreResult",
    "StoredBackup",
    "backup_create",
    "backup_fetched",
    "backup_list",
    "backup_plan",
    "backup_prune",
    "backup_restore",
]
