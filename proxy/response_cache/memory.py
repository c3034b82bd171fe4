"""The cache's first tier: each process's memory of its scopes.

Per scope, an LRU of entries (metadata, and the response once it has been read) and one
`SemanticIndex` per context fingerprint. What another tier shares is mirrored here by
``proxy.response_cache.backends``; the entries' JSON form is the one Redis keeps.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from common.local_state import local_state_register
from proxy.models import CacheEntry
from proxy.response_cache.embedder import embedder
from proxy.semantic_cache.index import SemanticIndex

# --- Entries ------------------------------------------------------------------------------


@dataclass
class Entry:
    key: str  # the exact key: one entry per (scope, exact key)
    scope: str
    organization_id: int | None
    fingerprint: str
    question: str
    model: str
    expires_at: float  # wall clock, shared by every process
    response: dict | None = None  # None: known from the log, not read yet
    vector: np.ndarray | None = None

    def live(self, now: float) -> bool:
        return self.expires_at > now

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "scope": self.scope,
                "org": self.organization_id,
                "fp": self.fingerprint,
                "q": self.question,
                "model": self.model,
                "exp": self.expires_at,
                "response": self.response,
                "v": _pack_vector(self.vector),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry:
        data = json.loads(raw)
        return cls(
            key=data["key"],
            scope=data["scope"],
            organization_id=data.get("org"),
            fingerprint=data["fp"],
            question=data["q"],
            model=data.get("model", ""),
            expires_at=float(data["exp"]),
            response=data.get("response"),
            vector=_unpack_vector(data.get("v")),
        )

    @classmethod
    def from_row(cls, row: CacheEntry) -> Entry:
        vector = None
        if row.embedding:
            vector = np.frombuffer(bytes(row.embedding), dtype=np.float32).copy()
        return cls(
            key=row.exact_key,
            scope=row.scope,
            organization_id=row.organization_id,
            fingerprint=row.context_fingerprint,
            question=row.question,
            model=row.model,
            expires_at=row.expires_at.timestamp(),
            response=row.response,
            vector=vector,
        )


def _pack_vector(vector: np.ndarray | None) -> str | None:
    if vector is None:
        return None
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()


def _unpack_vector(text: str | None) -> np.ndarray | None:
    if not text:
        return None
    return np.frombuffer(base64.b64decode(text), dtype=np.float32).copy()


# --- Process memory -----------------------------------------------------------------------


@dataclass
class ScopeState:
    entries: OrderedDict[str, Entry] = field(default_factory=OrderedDict)  # first = LRU
    indexes: dict[str, SemanticIndex] = field(default_factory=dict)
    log_id: str = "0"
    hits: int = 0
    misses: int = 0
    evictions: int = 0

    def index_for(self, fingerprint: str) -> SemanticIndex:
        index = self.indexes.get(fingerprint)
        if index is None:
            # The scope's own LRU bounds the entries; the index only mirrors them. Its clock is
            # the wall clock so expiry times read from Redis mean the same in every process.
            index = SemanticIndex(
                dim=embedder().dim, max_items=settings.CACHE_MAX_ITEMS, clock=time.time
            )
            self.indexes[fingerprint] = index
        return index

    def put(self, entry: Entry) -> None:
        old = self.entries.pop(entry.key, None)
        if entry.response is None and old is not None and old.fingerprint == entry.fingerprint:
            entry.response = old.response
        if old is not None and old.fingerprint != entry.fingerprint:
            self.indexes.get(old.fingerprint, _EMPTY).remove(old.key)
        self.entries[entry.key] = entry
        # A vector of another size was made by another embedder (the setting changed):
        # the entry still serves exact repeats, just not by meaning.
        if entry.vector is not None and entry.vector.shape == (embedder().dim,):
            self.index_for(entry.fingerprint).add(
                entry_id=entry.key,
                vector=entry.vector,
                text=entry.question,
                expires_at=entry.expires_at,
            )
            entry.vector = None  # the index keeps its own copy; do not hold two

    def remove(self, key: str) -> Entry | None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            index = self.indexes.get(entry.fingerprint)
            if index is not None:
                index.remove(key)
                if not len(index):
                    del self.indexes[entry.fingerprint]
        return entry

    def touch(self, key: str) -> None:
        if key in self.entries:
            self.entries.move_to_end(key)
            entry = self.entries[key]
            index = self.indexes.get(entry.fingerprint)
            if index is not None:
                index.touch(key)

    def least_recently_used_beyond(self, limit: int) -> list[str]:
        excess = len(self.entries) - limit
        return list(self.entries)[: max(excess, 0)]

    def expired(self, now: float) -> list[str]:
        return [key for key, entry in self.entries.items() if not entry.live(now)]

    def memory_bytes(self) -> int:
        vectors = sum(index.memory_bytes() for index in self.indexes.values())
        texts = sum(
            len(entry.question) + (len(json.dumps(entry.response)) if entry.response else 0)
            for entry in self.entries.values()
        )
        return vectors + texts


class _NoIndex:
    def remove(self, key: str) -> bool:
        return False


_EMPTY = _NoIndex()

# Touched from the event loop, the warm-up thread and pool threads (admin, clear): one lock.
_lock = threading.RLock()
_scopes: dict[str, ScopeState] = {}
_loading: dict[str, asyncio.Future] = {}


def _scope(scope: str) -> ScopeState | None:
    return _scopes.get(scope)


def memory_forget() -> None:
    """Drop this process's memory tier (tests; a new process starts like this)."""
    with _lock:
        _scopes.clear()
        _loading.clear()


# A twin of Redis's scopes: what this process kept while Redis was away (a store made
# just as it went) is not what Redis holds, so the end of an outage forgets it too.
local_state_register("cache:memory", memory_forget, redis_twin=True)
