"""What the proxy can tell of an audio file without decoding it: a WAV's duration (and
its INFO comment); any other file's duration guessed from its length."""

from __future__ import annotations

import struct

# Bytes per second assumed for a compressed file whose length is all we know (128 kbit/s).
COMPRESSED_BYTES_PER_SECOND = 16_000


def _riff_chunks(data: bytes):
    position = 12
    while position + 8 <= len(data):
        kind = data[position : position + 4]
        (size,) = struct.unpack("<I", data[position + 4 : position + 8])
        yield kind, data[position + 8 : position + 8 + size]
        position += 8 + size + (size % 2)


def wav_facts(data: bytes) -> tuple[float, str] | None:
    """(duration in seconds, INFO comment) of a WAV file, None for anything else."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    byte_rate, frames, comment = 0, 0, ""
    for kind, chunk in _riff_chunks(data):
        if kind == b"fmt " and len(chunk) >= 16:
            byte_rate = struct.unpack("<I", chunk[8:12])[0]
        elif kind == b"data":
            frames = len(chunk)
        elif kind == b"LIST" and chunk[:4] == b"INFO":
            for name, value in _riff_chunks(b"RIFF\x00\x00\x00\x00" + chunk):
                if name == b"ICMT":
                    comment = value.rstrip(b"\x00").decode("utf-8", "replace")
    return (frames / byte_rate if byte_rate else 0.0), comment


def audio_seconds(data: bytes) -> float:
    """A file's duration: read from a WAV header, else guessed from its length."""
    facts = wav_facts(data)
    if facts is not None:
        return facts[0]
    return len(data) / COMPRESSED_BYTES_PER_SECOND
