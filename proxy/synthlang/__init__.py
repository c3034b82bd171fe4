"""SynthLang prompt compression: pure functions, no Django and no ORM.

Public entry points: `compress_text`, `compress_messages`, `pack`, `unpack`.
"""

from proxy.synthlang.engine import (
    DEFAULT_ROLES,
    LEVELS,
    CompressionLevelError,
    CompressionResult,
    MessagesCompressionStats,
    compress_messages,
    compress_text,
    normalize_level,
)
from proxy.synthlang.transport import TransportDecodeError, pack, unpack

__all__ = [
    "DEFAULT_ROLES",
    "LEVELS",
    "CompressionLevelError",
    "CompressionResult",
    "MessagesCompressionStats",
    "TransportDecodeError",
    "compress_messages",
    "compress_text",
    "normalize_level",
    "pack",
    "unpack",
]
