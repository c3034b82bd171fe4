"""The backup file format: a magic line, then length-prefixed Fernet frames.

Frame 0 holds a JSON header (format version, vendor, database name, creation time); the
frames after it hold a gzip stream of the dump in chunks of ``CHUNK_BYTES``, so neither
backup nor restore holds the whole database in memory. Fernet authenticates each frame on
its own, so every frame's plaintext starts with the backup's random id, the frame's index
and a "last frame" flag: frames reordered, dropped, truncated away or spliced in from
another backup are refused (docs/decisions/0008-backups.md).
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
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


class BackupError(Exception):
    """A backup cannot be written or restored; the message says why, for an operator."""


# --- Encryption and framing ----------------------------------------------------------


def encrypt_to(path: Path, *, header: dict, chunks: Iterator[bytes]) -> None:
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


def frames(path: Path, read=None) -> Iterator[bytes]:
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
            if read is not None:
                read(_LENGTH.size + length)
            yield token


def decrypt_to(path: Path, dump_path: Path, *, read=None) -> dict:
    """Check every frame of ``path`` and write the decompressed dump to ``dump_path``."""
    fernet = MultiFernet([Fernet(key.encode()) for key in settings.ENCRYPTION_KEYS])
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    header: dict | None = None
    backup_id = None
    expected_index = 0
    seen_last = False
    with dump_path.open("wb") as out:
        for token in frames(path, read):
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
