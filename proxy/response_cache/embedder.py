"""The model that embeds questions for the semantic tier, and the threads it runs on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from threadpoolctl import threadpool_limits

from proxy.semantic_cache.embedding import StaticEmbedder, UpstreamEmbedder
from proxy.semantic_cache.minilm import MiniLMEmbedder

# Embedding is CPU work of up to a few ms: two threads keep the event loop free without
# letting a burst of lookups take every core of the machine.
_embed_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cache-embed")
# Those two threads are the cache's parallelism: BLAS threads under each index search only
# contend with them and with onnxruntime (measured on 2 shared CPUs: a MiniLM embedding and a
# 10,000-entry search took 21.5 ms together with two OpenBLAS threads, 8.8 ms with one).
threadpool_limits(limits=1, user_api="blas")


Embedder = MiniLMEmbedder | StaticEmbedder | UpstreamEmbedder


def _configured_embedder() -> Embedder:
    """all-MiniLM-L6-v2 offline by default; the static model or the upstream's embeddings
    API when configured (docs/decisions/0004)."""
    if settings.CACHE_EMBEDDER == "upstream":
        return UpstreamEmbedder(
            base_url=settings.OPENAI_BASE_URL,
            api_key=settings.OPENAI_API_KEY,
            model=settings.CACHE_EMBEDDING_MODEL,
            dimensions=settings.CACHE_EMBEDDING_DIMENSIONS,
        )
    if settings.CACHE_EMBEDDER in {"static", "local"}:
        return StaticEmbedder()
    return MiniLMEmbedder()


_embedder = _configured_embedder()
# Synonym matching uses the static model's word vectors whatever embeds questions: they are
# free, offline, the same in every process, and (unlike MiniLM's) they keep antonyms apart.
_word_model = _embedder if isinstance(_embedder, StaticEmbedder) else StaticEmbedder()


def embedder() -> Embedder:
    return _embedder


def word_vectors_or_none():
    """The word-vector function for synonym matching, or None when the local model is
    unusable (verification then matches words only as written, typos and acronyms)."""
    try:
        _word_model.warm_up()
    except Exception:
        return None
    return _word_model.word_vectors


def embeds_locally() -> bool:
    """True for the offline models (CPU here, free); False for the upstream's paid API."""
    return isinstance(_embedder, MiniLMEmbedder | StaticEmbedder)
