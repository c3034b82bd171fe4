"""In-memory semantic index: one matrix of vectors per scope, searched with one matrix product.

Each proxy process keeps one `SemanticIndex` per cache scope (organization, key or platform, plus
the context fingerprint), loaded and kept current from Redis by the integrator. The index holds
only what the lookup needs (vector, question text for verification, small metadata); responses
live in Redis and the database.

Bounds: `max_items` per scope with least-recently-used eviction, and a TTL per entry. "Used" means
a verified hit (`touch`), not merely being a search candidate, so near-misses do not keep an
entry alive.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Storage = Literal["float32", "float16", "int8"]
# Rows are scored in blocks so that float16/int8 storage is widened a block at a time, never the
# whole matrix at once (which would cost the memory the compact storage saves).
_SCORE_BLOCK_ROWS = 16384
_INITIAL_CAPACITY = 64


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    score: float
    text: str
    meta: Mapping[str, object] = field(default_factory=dict)


@dataclass
class IndexStats:
    added: int = 0
    evicted: int = 0
    expired: int = 0
    removed: int = 0


class SemanticIndex:
    """Vectors of one scope. Thread-safe; every public method takes the index's lock."""

    def __init__(
        self,
        *,
        dim: int,
        max_items: int,
        ttl_seconds: float | None = None,
        storage: Storage = "float32",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.dim = dim
        self.max_items = max_items
        self.ttl_seconds = ttl_seconds
        self.storage = storage
        self._clock = clock
        self._lock = threading.Lock()
        self._capacity = min(max_items, _INITIAL_CAPACITY)
        self._vectors = np.zeros((self._capacity, dim), dtype=self._dtype())
        # int8 rows keep their own scale so each row uses the full -127..127 range.
        self._scales = np.ones(self._capacity, dtype=np.float32)
        self._expires_at = np.full(self._capacity, np.inf)
        self._occupied = np.zeros(self._capacity, dtype=bool)
        self._slot_of: dict[str, int] = {}
        self._entry_at: dict[int, tuple[str, str, Mapping[str, object]]] = {}
        self._free_slots: list[int] = list(range(self._capacity - 1, -1, -1))
        # Insertion/touch order: first key = least recently used.
        self._recency: OrderedDict[str, None] = OrderedDict()
        self.stats = IndexStats()

    def __len__(self) -> int:
        with self._lock:
            return len(self._slot_of)

    def __contains__(self, entry_id: str) -> bool:
        with self._lock:
            return entry_id in self._slot_of

    def add(
        self,
        *,
        entry_id: str,
        vector: np.ndarray,
        text: str,
        meta: Mapping[str, object] | None = None,
        expires_at: float | None = None,
    ) -> list[str]:
        """Insert or replace an entry; returns the ids evicted to make room (for metrics/Redis).

        `expires_at` is on the index's clock; by default now + ttl_seconds.
        """
        row = np.asarray(vector, dtype=np.float32).reshape(-1)
        if row.shape[0] != self.dim:
            raise ValueError(f"vector has {row.shape[0]} dimensions, the index {self.dim}")
        norm = float(np.linalg.norm(row))
        if norm == 0.0:
            raise ValueError("cannot index a zero vector")
        row = row / norm
        if expires_at is None and self.ttl_seconds is not None:
            expires_at = self._clock() + self.ttl_seconds
        with self._lock:
            evicted: list[str] = []
            if entry_id in self._slot_of:
                self._release(entry_id)
            elif len(self._slot_of) >= self.max_items:
                # Expired entries make room before any live entry is evicted.
                self._purge_expired()
                while len(self._slot_of) >= self.max_items:
                    oldest = next(iter(self._recency))
                    self._release(oldest)
                    self.stats.evicted += 1
                    evicted.append(oldest)
            slot = self._claim_slot()
            self._store_row(slot, row)
            self._expires_at[slot] = np.inf if expires_at is None else expires_at
            self._occupied[slot] = True
            self._slot_of[entry_id] = slot
            self._entry_at[slot] = (entry_id, text, dict(meta or {}))
            self._recency[entry_id] = None
            self.stats.added += 1
            return evicted

    def search(self, *, vector: np.ndarray, k: int = 5, threshold: float = 0.0) -> list[Candidate]:
        """Up to `k` live entries with cosine >= threshold, best first."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        with self._lock:
            if not self._slot_of:
                return []
            scores = self._scores(query)
            # Filter by score first: above a realistic threshold only a handful of rows remain,
            # so the liveness checks and the sort touch a few rows, not the whole matrix.
            rows = np.flatnonzero(scores >= threshold)
            rows = rows[self._occupied[rows] & (self._expires_at[rows] > self._clock())]
            if rows.size == 0:
                return []
            if rows.size > k:
                rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
            rows = rows[np.argsort(-scores[rows], kind="stable")]
            candidates = []
            for slot in rows:
                entry_id, text, meta = self._entry_at[int(slot)]
                candidates.append(
                    Candidate(entry_id=entry_id, score=float(scores[slot]), text=text, meta=meta)
                )
            return candidates

    def touch(self, entry_id: str) -> None:
        """Mark an entry as used (a verified hit) so it leaves last."""
        with self._lock:
            if entry_id in self._recency:
                self._recency.move_to_end(entry_id)

    def remove(self, entry_id: str) -> bool:
        with self._lock:
            if entry_id not in self._slot_of:
                return False
            self._release(entry_id)
            self.stats.removed += 1
            return True

    def clear(self) -> None:
        with self._lock:
            for entry_id in list(self._slot_of):
                self._release(entry_id)

    def purge_expired(self) -> list[str]:
        with self._lock:
            return self._purge_expired()

    def memory_bytes(self) -> int:
        """Bytes held by the vector storage (allocated capacity, not only live rows)."""
        with self._lock:
            return int(
                self._vectors.nbytes
                + self._scales.nbytes
                + self._expires_at.nbytes
                + self._occupied.nbytes
            )

    # --- internals (called with the lock held) -----------------------------------------------

    def _dtype(self):
        return {"float32": np.float32, "float16": np.float16, "int8": np.int8}[self.storage]

    def _store_row(self, slot: int, row: np.ndarray) -> None:
        if self.storage == "int8":
            scale = float(np.abs(row).max()) / 127.0 or 1.0
            self._vectors[slot] = np.round(row / scale).astype(np.int8)
            self._scales[slot] = scale
        else:
            self._vectors[slot] = row.astype(self._vectors.dtype)

    def _scores(self, query: np.ndarray) -> np.ndarray:
        if self.storage == "float32":
            return self._vectors @ query
        scores = np.empty(self._capacity, dtype=np.float32)
        for start in range(0, self._capacity, _SCORE_BLOCK_ROWS):
            block = self._vectors[start : start + _SCORE_BLOCK_ROWS].astype(np.float32)
            scores[start : start + _SCORE_BLOCK_ROWS] = block @ query
        if self.storage == "int8":
            scores *= self._scales
        return scores

    def _claim_slot(self) -> int:
        if not self._free_slots:
            self._grow()
        return self._free_slots.pop()

    def _grow(self) -> None:
        # Doubling up to max_items: a scope with ten entries does not hold a 1,000-row matrix.
        old = self._capacity
        new = min(self.max_items, max(old * 2, _INITIAL_CAPACITY))
        if new <= old:
            raise RuntimeError("index is full")  # unreachable: eviction runs before claiming
        self._vectors = np.concatenate(
            [self._vectors, np.zeros((new - old, self.dim), dtype=self._vectors.dtype)]
        )
        self._scales = np.concatenate([self._scales, np.ones(new - old, dtype=np.float32)])
        self._expires_at = np.concatenate([self._expires_at, np.full(new - old, np.inf)])
        self._occupied = np.concatenate([self._occupied, np.zeros(new - old, dtype=bool)])
        self._free_slots.extend(range(new - 1, old - 1, -1))
        self._capacity = new

    def _release(self, entry_id: str) -> None:
        slot = self._slot_of.pop(entry_id)
        self._recency.pop(entry_id, None)
        self._entry_at.pop(slot, None)
        self._occupied[slot] = False
        self._expires_at[slot] = np.inf
        self._free_slots.append(slot)

    def _purge_expired(self) -> list[str]:
        expired_slots = np.flatnonzero(self._occupied & (self._expires_at <= self._clock()))
        expired = [self._entry_at[int(slot)][0] for slot in expired_slots]
        for entry_id in expired:
            self._release(entry_id)
            self.stats.expired += 1
        return expired


class SemanticIndexRegistry:
    """One `SemanticIndex` per scope key, created on first use with shared settings.

    Scopes never see each other's entries: a search goes to exactly one scope's matrix.
    """

    def __init__(
        self,
        *,
        dim: int,
        max_items_per_scope: int,
        ttl_seconds: float | None = None,
        storage: Storage = "float32",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = {
            "dim": dim,
            "max_items": max_items_per_scope,
            "ttl_seconds": ttl_seconds,
            "storage": storage,
            "clock": clock,
        }
        self._lock = threading.Lock()
        self._indexes: dict[Hashable, SemanticIndex] = {}

    def scope(self, key: Hashable) -> SemanticIndex:
        index = self._indexes.get(key)
        if index is None:
            with self._lock:
                index = self._indexes.get(key)
                if index is None:
                    index = SemanticIndex(**self._settings)
                    self._indexes[key] = index
        return index

    def drop_scope(self, key: Hashable) -> bool:
        with self._lock:
            return self._indexes.pop(key, None) is not None

    def scopes(self) -> list[Hashable]:
        with self._lock:
            return list(self._indexes)

    def memory_bytes(self) -> int:
        with self._lock:
            indexes = list(self._indexes.values())
        return sum(index.memory_bytes() for index in indexes)
