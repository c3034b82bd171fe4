"""Encrypted database backups and their restore (no HTTP, no ORM models).

A backup file is the magic line ``SYNTHLANG-BACKUP 1`` followed by frames, each a
4-byte big-endian length and one Fernet token. Frame 0 holds a JSON header (format
version, vendor, database name, creation time); the frames after it hold a gzip stream
of the dump (``pg_dump --format=custom`` or an SQLite database file), in chunks of
``CHUNK_BYTES``, so neither backup nor restore holds the whole database in memory.

Fernet authenticates each frame on its own, so every frame's plaintext starts with the
backup's random id, the frame's index and a "last frame" flag: frames reordered, dropped,
truncated away or spliced in from another backup are refused.

Restore decrypts and checks everything (header, every frame, gzip's CRC, the dump
itself) into a private temporary file before it writes anything to the database.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

FORMAT_VERSION = 1
MAGIC = b"SYNTHLANG-BACKUP 1\n"
CHUNK_BYTES = 1024 * 1024
# A frame is one chunk plus Fernet's base64 overhead; anything far larger is not ours.
MAX_FRAME_BYTES = 4 * CHUNK_BYTES
_FRAME_PREFIX = struct.Struct(">16sQ?")  # backup id, frame index, last frame
_LENGTH = struct.Struct(">I")
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_NAME = re.compile(r"^synthlang-(?P<vendor>[a-z0-9]+)-(?P<stamp>\d{8}T\d{6}\.\d{6}Z)\.bak$")
_ENGINE_VENDORS = {
    "django.db.backends.postgresql": "postgresql",
    "common.postgresql": "postgresql",  # the same backend behind the connection pool
    "django.db.backends.sqlite3": "sqlite",
}


class BackupError(Exception):
    """A backup cannot be written or restored; the message says why, for an operator."""


@dataclass(frozen=True)
class BackupPlan:
    path: Path
    vendor: str
    database: str


@dataclass(frozen=True)
class BackupResult:
    path: Path
    vendor: str
    database: str
    size_bytes: int
    pruned: tuple[Path, ...]


@dataclass(frozen=True)
class RestoreResult:
    path: Path
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
    return BackupPlan(path=_backup_dir() / name, vendor=vendor, database=str(config["NAME"]))


def backup_create(*, now: datetime | None = None) -> BackupResult:
    """Dump the default database, compress, encrypt and write it; then prune old backups."""
    now = now or datetime.now(UTC)
    plan = backup_plan(now=now)
    config = settings.DATABASES["default"]
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "format": FORMAT_VERSION,
        "vendor": plan.vendor,
        "database": plan.database,
        "created_at": now.isoformat(),
    }
    # Written under a temporary name and renamed, so a crash never leaves a file that
    # looks like a complete backup (and retention never counts a half-written one).
    partial = plan.path.with_name(plan.path.name + ".partial")
    try:
        with _dump_stream(plan.vendor, config) as dump:
            _encrypt_to(partial, header=header, chunks=dump)
        os.replace(partial, plan.path)
    finally:
        partial.unlink(missing_ok=True)
    pruned = backup_prune(now=now)
    return BackupResult(
        path=plan.path,
        vendor=plan.vendor,
        database=plan.database,
        size_bytes=plan.path.stat().st_size,
        pruned=tuple(pruned),
    )


def backup_prune(*, now: datetime | None = None, dry_run: bool = False) -> list[Path]:
    """Delete backups older than ``BACKUP_RETENTION_DAYS``, judged by the name's timestamp.

    The name, not the file's mtime: copying a backup around (restoring it from cold
    storage) must not make it look new.
    """
    directory = _backup_dir()
    if not directory.is_dir():
        return []
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.BACKUP_RETENTION_DAYS)
    old = []
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if not match or not path.is_file():
            continue
        taken_at = datetime.strptime(match["stamp"], _TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        if taken_at < cutoff:
            old.append(path)
    if not dry_run:
        for path in old:
            path.unlink(missing_ok=True)
    return old


def backup_restore(*, path: Path, dry_run: bool = False) -> RestoreResult:
    """Restore ``path`` into the default database, or with ``dry_run`` only check it.

    Every check runs before the first write: a wrong key, a corrupt or truncated file
    or a backup of another database vendor raises ``BackupError`` and the database is
    untouched.
    """
    path = Path(path)
    config = settings.DATABASES["default"]
    vendor = _vendor(config)
    with tempfile.TemporaryDirectory(prefix="synthlang-restore-") as workdir:
        dump_path = Path(workdir) / "dump"
        header = _decrypt_to(path, dump_path)
        if header.get("vendor") != vendor:
            raise BackupError(
                f"{path.name} is a {header.get('vendor')} backup but the configured database "
                f"is {vendor}; refusing to restore it."
            )
        _verify_dump(vendor, dump_path, config)
        if not dry_run:
            _restore_dump(vendor, dump_path, config)
        return RestoreResult(
            path=path,
            vendor=vendor,
            database=str(config["NAME"]),
            created_at=str(header.get("created_at", "")),
            dump_bytes=dump_path.stat().st_size,
            restored=not dry_run,
        )


# --- Encryption and framing ----------------------------------------------------------


def _encrypt_to(path: Path, *, header: dict, chunks: Iterator[bytes]) -> None:
    fernet = Fernet(settings.ENCRYPTION_KEYS[0].encode())
    backup_id = secrets.token_bytes(16)
    index = 0

    def frame(data: bytes, last: bool) -> bytes:
        nonlocal index
        token = fernet.encrypt(_FRAME_PREFIX.pack(backup_id, index, last) + data)
        index += 1
        return _LENGTH.pack(len(token)) + token

    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip container
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(MAGIC)
        out.write(frame(json.dumps(header).encode(), last=False))
        pending = b""
        for chunk in chunks:
            pending += compressor.compress(chunk)
            while len(pending) >= CHUNK_BYTES:
                out.write(frame(pending[:CHUNK_BYTES], last=False))
                pending = pending[CHUNK_BYTES:]
        out.write(frame(pending + compressor.flush(), last=True))
        out.flush()
        os.fsync(out.fileno())


def _frames(path: Path) -> Iterator[bytes]:
    try:
        handle = path.open("rb")
    except OSError as error:
        raise BackupError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise BackupError(f"{path.name} is not a SynthLang backup (unknown file header).")
        while True:
            prefix = handle.read(_LENGTH.size)
            if not prefix:
                return
            if len(prefix) < _LENGTH.size:
                raise BackupError(f"{path.name} is truncated.")
            (length,) = _LENGTH.unpack(prefix)
            if length > MAX_FRAME_BYTES:
                raise BackupError(f"{path.name} is corrupt (impossible frame length).")
            token = handle.read(length)
            if len(token) < length:
                raise BackupError(f"{path.name} is truncated.")
            yield token


def _decrypt_to(path: Path, dump_path: Path) -> dict:
    """Check every frame of ``path`` and write the decompressed dump to ``dump_path``."""
    fernet = MultiFernet([Fernet(key.encode()) for key in settings.ENCRYPTION_KEYS])
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    header: dict | None = None
    backup_id = None
    expected_index = 0
    seen_last = False
    with dump_path.open("wb") as out:
        for token in _frames(path):
            if seen_last:
                raise BackupError(f"{path.name} is corrupt (data after the last frame).")
            try:
                plaintext = fernet.decrypt(token)
            except InvalidToken:
                if expected_index == 0:
                    raise BackupError(
                        f"{path.name} cannot be decrypted with any key in ENCRYPTION_KEY "
                        "(a backup made under another key, or a corrupt file)."
                    ) from None
                raise BackupError(f"{path.name} is corrupt (frame {expected_index}).") from None
            frame_id, index, last = _FRAME_PREFIX.unpack_from(plaintext)
            data = plaintext[_FRAME_PREFIX.size :]
            if index != expected_index or (backup_id is not None and frame_id != backup_id):
                raise BackupError(f"{path.name} is corrupt (frames out of order or mixed).")
            backup_id = frame_id
            expected_index += 1
            seen_last = last
            if header is None:
                header = _parse_header(path, data)
                continue
            try:
                out.write(decompressor.decompress(data))
            except zlib.error:
                raise BackupError(f"{path.name} is corrupt (compressed data).") from None
    if header is None:
        raise BackupError(f"{path.name} holds no backup.")
    if not seen_last or not decompressor.eof:
        raise BackupError(f"{path.name} is truncated (the last frame is missing).")
    return header


def _parse_header(path: Path, data: bytes) -> dict:
    try:
        header = json.loads(data)
    except ValueError:
        raise BackupError(f"{path.name} has an unreadable header.") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
        raise BackupError(
            f"{path.name} has backup format {header.get('format')!r} "
            f"but this release reads format {FORMAT_VERSION}."
            if isinstance(header, dict)
            else f"{path.name} has an unreadable header."
        )
    return header


# --- Dumping and restoring each vendor -------------------------------------------------


def _vendor(config: Mapping) -> str:
    vendor = _ENGINE_VENDORS.get(config["ENGINE"])
    if vendor is None:
        raise BackupError(f"backups do not support the database engine {config['ENGINE']}.")
    return vendor


def _backup_dir() -> Path:
    return Path(settings.BACKUP_DIR)


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
    """Context manager yielding the dump as an iterator of byte chunks."""

    def __init__(self, vendor: str, config: Mapping):
        self.vendor = vendor
        self.config = config
        self.workdir: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Iterator[bytes]:
        self.workdir = tempfile.TemporaryDirectory(prefix="synthlang-backup-")
        dump_path = Path(self.workdir.name) / "dump"
        if self.vendor == "postgresql":
            # Uncompressed custom format: gzip compresses it once, on our side.
            _run(
                [
                    "pg_dump",
                    "--format=custom",
                    "--compress=0",
                    "--no-password",
                    "-f",
                    str(dump_path),
                ],
                self.config,
                "dump the database",
            )
        else:
            _sqlite_copy(Path(self.config["NAME"]), dump_path)
        return _read_chunks(dump_path)

    def __exit__(self, *exc_info) -> None:
        if self.workdir is not None:
            self.workdir.cleanup()


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


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


__all__ = [
    "BackupError",
    "BackupPlan",
    "BackupResult",
    "RestoreResult",
    "backup_create",
    "backup_plan",
    "backup_prune",
    "backup_restore",
]
