"""Sentence embeddings and the English lexicon for the semantic cache.

The offline default is WordLlama's static model ``l2_supercat`` (256 dimensions): a token
embedding table and mean pooling, run with numpy and the ``tokenizers`` library. Its files ship
inside the ``wordllama`` wheel that the model's own author publishes on PyPI; they are read from
the installed package without importing it, and each is checked against the SHA-256 that the
publisher states for it (the wheel's ``RECORD``, which PyPI's hash of the wheel covers; the
same bytes are the blobs of the author's repository). A different file is refused: vectors
from another model would not match the ones already cached. docs/decisions/0004 explains the
choice and what a stronger embedder (``CACHE_EMBEDDER=upstream``) adds.

The lexicon (typo repair, and telling a typo from another word) is the English word-frequency
list that ships inside ``pyspellchecker``, verified the same way.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from proxy.semantic_cache.normalize import Lexicon

EMBEDDING_DIM = 256
MODEL_ID = "wordllama-l2_supercat-256"
# Longer text is cut here: past it the question is a document, served by the exact tier only.
MAX_SEQUENCE_TOKENS = 512


class PinnedFile:
    """A data file inside an installed distribution, with the SHA-256 its publisher states."""

    def __init__(self, *, package: str, relative_path: str, sha256: str, stated_in: str):
        self.package = package
        self.relative_path = relative_path
        self.sha256 = sha256
        self.stated_in = stated_in

    def path(self) -> Path:
        return package_file(package=self.package, relative_path=self.relative_path)

    def verified_path(self) -> Path:
        return verified_file(path=self.path(), expected_sha256=self.sha256)


# wordllama 0.4.0.post1 (Lee Miller). The hex digests below are the RECORD entries
# (urlsafe base64 there) of wordllama-0.4.0.post1.dist-info/RECORD.
MODEL_WEIGHTS = PinnedFile(
    package="wordllama",
    relative_path="weights/l2_supercat_256.safetensors",
    sha256="64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5",
    stated_in="wordllama-0.4.0.post1.dist-info/RECORD",
)
MODEL_TOKENIZER = PinnedFile(
    package="wordllama",
    relative_path="tokenizers/l2_supercat_tokenizer_config.json",
    sha256="93248f2a9ec36c7b35f700a033d5f36228aae48db61aee31007fa49062cdeb68",
    stated_in="wordllama-0.4.0.post1.dist-info/RECORD",
)
# pyspellchecker 0.9.1 (Tyler Barrus): English words and their corpus counts.
LEXICON_FILE = PinnedFile(
    package="spellchecker",
    relative_path="resources/en.json.gz",
    sha256="2474a48af86fd81dccea9edd0bba6cd36dd2ecedc0ae217cefcb233bba28613c",
    stated_in="pyspellchecker-0.9.1.dist-info/RECORD",
)

# Single-word vectors kept for synonym matching (1 KB each).
_WORD_CACHE_LIMIT = 50_000
# Batches bound peak memory (batch x tokens x 256 floats) without giving up vectorisation.
DEFAULT_BATCH_SIZE = 64


class EmbeddingError(Exception):
    """The embedding model cannot be loaded or run."""

    code = "embedding_unavailable"


class ModelFileMismatch(EmbeddingError):
    """A pinned model, tokenizer or lexicon file does not have the expected sha256."""

    code = "embedding_model_mismatch"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of shape (len(texts), dim)."""

    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def package_file(*, package: str, relative_path: str) -> Path:
    """Locate a data file inside an installed package without importing the package.

    ``find_spec`` on a top-level package reads its location only: importing ``wordllama``
    would configure the root logger and pull in code the cache does not need.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            f"package {package!r} is not installed; `pip install -r requirements.txt` installs it"
        )
    return Path(next(iter(spec.submodule_search_locations))) / relative_path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_file(*, path: Path, expected_sha256: str) -> Path:
    if not path.is_file():
        raise EmbeddingError(f"embedding file not found: {path}")
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise ModelFileMismatch(
            f"refusing to load {path}: sha256 {actual} differs from the pinned {expected_sha256}"
        )
    return path


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # An all-zero row (no known token) stays zero, not NaN; the index refuses to store it.
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class StaticEmbedder:
    """WordLlama ``l2_supercat``: mean of the tokens' vectors, L2 normalised.

    Loading is lazy and happens once per process (instances share it); a failed load is
    remembered, so a missing or tampered file costs one attempt, not one per request.
    """

    model_id = MODEL_ID
    dim = EMBEDDING_DIM
    # The cosine a rewording needs once every check passed (docs/decisions/0004).
    paraphrase_threshold = 0.95

    _shared_lock = threading.Lock()
    _shared_state: tuple[np.ndarray, object] | EmbeddingError | None = None

    def __init__(
        self,
        *,
        weights_path: Path | None = None,
        tokenizer_path: Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._weights_path = weights_path
        self._tokenizer_path = tokenizer_path
        self._batch_size = batch_size
        # Custom paths (tests, a vendored copy) get their own state; the default is process-wide.
        self._uses_shared_state = weights_path is None and tokenizer_path is None
        self._own_lock = threading.Lock()
        self._own_state: tuple[np.ndarray, object] | EmbeddingError | None = None
        self._word_cache: dict[str, np.ndarray] = {}

    def warm_up(self) -> None:
        """Load the model now (at process start) so the first request does not pay for it."""
        self._loaded()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        table, tokenizer = self._loaded()
        chunks = [
            self._embed_batch(table, tokenizer, texts[start : start + self._batch_size])
            for start in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(chunks, axis=0)

    def word_vectors(self, words: list[str]) -> np.ndarray:
        """Unit vectors of single words (synonym matching), each computed once per process."""
        missing = [word for word in dict.fromkeys(words) if word not in self._word_cache]
        if missing:
            if len(self._word_cache) > _WORD_CACHE_LIMIT:
                self._word_cache.clear()
            for word, vector in zip(missing, self.embed(missing), strict=True):
                self._word_cache[word] = vector
        return np.stack([self._word_cache[word] for word in words])

    def token_count(self, text: str) -> int:
        _, tokenizer = self._loaded()
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    @staticmethod
    def _embed_batch(table: np.ndarray, tokenizer, texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        width = max(len(encoding.ids) for encoding in encodings) or 1
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1.0
        np.clip(ids, 0, table.shape[0] - 1, out=ids)
        summed = (table[ids] * mask[:, :, None]).sum(axis=1)
        # Padding positions must not dilute short texts.
        return l2_normalise(summed / np.maximum(mask.sum(axis=1, keepdims=True), 1.0))

    def _loaded(self) -> tuple[np.ndarray, object]:
        if self._uses_shared_state:
            cls = StaticEmbedder
            if cls._shared_state is None:
                with cls._shared_lock:
                    if cls._shared_state is None:
                        cls._shared_state = _attempt(self._load)
            state = cls._shared_state
        else:
            if self._own_state is None:
                with self._own_lock:
                    if self._own_state is None:
                        self._own_state = _attempt(self._load)
            state = self._own_state
        if isinstance(state, EmbeddingError):
            raise state
        return state

    def _load(self) -> tuple[np.ndarray, object]:
        # Imported here so that importing this module (e.g. by Django at start) costs nothing.
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        weights_path = verified_file(
            path=self._weights_path or MODEL_WEIGHTS.path(), expected_sha256=MODEL_WEIGHTS.sha256
        )
        tokenizer_path = verified_file(
            path=self._tokenizer_path or MODEL_TOKENIZER.path(),
            expected_sha256=MODEL_TOKENIZER.sha256,
        )
        tensors = load_file(str(weights_path))
        if len(tensors) != 1:
            raise EmbeddingError(f"{weights_path} holds {len(tensors)} tensors, expected one")
        # Stored as float16 (16 MB); float32 (32 MB) makes the gather and the sum 3x faster.
        table = np.ascontiguousarray(next(iter(tensors.values())), dtype=np.float32)
        if table.ndim != 2 or table.shape[1] != EMBEDDING_DIM:
            raise EmbeddingError(f"{weights_path} has shape {table.shape}")
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_SEQUENCE_TOKENS)
        return table, tokenizer


def _attempt(load):
    try:
        return load()
    except EmbeddingError as error:
        return error
    except Exception as error:  # a corrupt file fails in the loader's own way
        return EmbeddingError(
            f"the embedding model failed to load: {type(error).__name__}: {error}"
        )


_lexicon_lock = threading.Lock()
_lexicon: Lexicon | EmbeddingError | None = None


def english_lexicon() -> Lexicon:
    """English words ranked by frequency, for typo repair; loaded once per process.

    Independent of the embedder: the upstream embedder uses it too, and no model is loaded
    for it.
    """
    global _lexicon
    if _lexicon is None:
        with _lexicon_lock:
            if _lexicon is None:
                _lexicon = _attempt(_load_lexicon)
    if isinstance(_lexicon, EmbeddingError):
        raise _lexicon
    return _lexicon


def _load_lexicon() -> Lexicon:
    path = LEXICON_FILE.verified_path()
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        counts = json.load(handle)
    return Lexicon.from_counts(counts)


def cosine_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Cosine of two L2-normalised vectors (a plain dot product)."""
    return float(np.dot(first.astype(np.float32), second.astype(np.float32)))


class UpstreamEmbedder:
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint, instead of the
    local model (``CACHE_EMBEDDER=upstream``).

    Synchronous on purpose: the cache calls ``embed`` on its own worker threads, never on
    the event loop. Verification keeps using the local lexicon, which needs no network.
    """

    # An unmeasured model gets the static model's bar until calibrated
    # (``manage.py cache_eval --embedder upstream``, CACHE_SIMILARITY_THRESHOLD).
    paraphrase_threshold = 0.95

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        dimensions: int,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.model = model
        self.dim = dimensions
        self.model_id = f"upstream:{model}:{dimensions}"
        self.timeout_seconds = timeout_seconds

    def __repr__(self) -> str:  # the key never reaches a log line
        return f"UpstreamEmbedder({self.model_id} at {self.base_url})"

    def warm_up(self) -> None:
        english_lexicon()

    def embed(self, texts: list[str]) -> np.ndarray:
        import urllib.error
        import urllib.request

        body = json.dumps({"model": self.model, "input": texts, "dimensions": self.dim})
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(  # noqa: S310 - the configured upstream URL
            f"{self.base_url}/embeddings", data=body.encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310
                payload = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise EmbeddingError(f"the upstream embeddings API failed: {exc}") from None
        items = sorted(payload.get("data") or [], key=lambda item: item.get("index", 0))
        try:
            vectors = np.array([item["embedding"] for item in items], dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise EmbeddingError("the upstream embeddings API returned no vectors") from None
        if vectors.shape != (len(texts), self.dim):
            raise EmbeddingError(
                f"the upstream embeddings API returned shape {vectors.shape}, "
                f"expected {(len(texts), self.dim)}"
            )
        return l2_normalise(vectors)
