"""Lossless transport form: UTF-8, gzip, then URL-safe base64 with a version prefix.

This is for moving large prompts between clients and the proxy, not for the model: a model
cannot read it, so it never goes upstream. The round trip is exact for any str, including lone
surrogates (kept with `surrogatepass`), so `unpack(pack(text)) == text` always holds.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib

PREFIX = "slz1:"
# A packed prompt should never expand past this; guards against gzip bombs on /decompress.
MAX_UNPACKED_BYTES = 32 * 1024 * 1024


class TransportDecodeError(ValueError):
    """The input is not a valid packed SynthLang transport string."""


def pack(text: str) -> str:
    """Packed form of `text`."""
    if not isinstance(text, str):
        raise TypeError("pack() takes a str")
    raw = text.encode("utf-8", "surrogatepass")
    # mtime=0 makes the output deterministic, so equal prompts pack to equal strings.
    compressed = gzip.compress(raw, compresslevel=6, mtime=0)
    return PREFIX + base64.urlsafe_b64encode(compressed).decode("ascii")


def unpack(packed: str) -> str:
    """Original text of a `pack` result; raises TransportDecodeError on anything else."""
    if not isinstance(packed, str):
        raise TransportDecodeError("packed text must be a string")
    if not packed.startswith(PREFIX):
        raise TransportDecodeError(f"packed text must start with {PREFIX!r}")
    body = packed[len(PREFIX) :].strip()
    try:
        compressed = base64.urlsafe_b64decode(body.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error, ValueError) as error:
        raise TransportDecodeError("packed text is not valid base64") from error
    try:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        raw = decompressor.decompress(compressed, MAX_UNPACKED_BYTES)
        if decompressor.unconsumed_tail:
            raise TransportDecodeError(f"packed text expands past {MAX_UNPACKED_BYTES} bytes")
        if not decompressor.eof or decompressor.unused_data:
            raise TransportDecodeError("packed text is truncated or has trailing data")
    except zlib.error as error:
        raise TransportDecodeError("packed text is not valid gzip data") from error
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as error:
        raise TransportDecodeError("packed text does not hold UTF-8 text") from error
