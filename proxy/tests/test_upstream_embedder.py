"""The semantic cache can embed through the upstream's embeddings API instead of the
local model (CACHE_EMBEDDER=upstream)."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from common.testing import live_server
from proxy.semantic_cache.embedding import EmbeddingError, UpstreamEmbedder
from proxy.tests.conftest import UPSTREAM_KEY


def test_upstream_embedder_returns_unit_vectors_of_the_configured_size(fake_upstream):
    embedder = UpstreamEmbedder(
        base_url=fake_upstream.v1,
        api_key=UPSTREAM_KEY,
        model="text-embedding-3-small",
        dimensions=64,
    )
    vectors = embedder.embed(["first text", "second text", "first text"])
    assert vectors.shape == (3, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2])
    assert "first text" not in repr(embedder) and UPSTREAM_KEY not in repr(embedder)


def test_upstream_embedder_failure_is_an_embedding_error(fake_upstream):
    embedder = UpstreamEmbedder(
        base_url=fake_upstream.v1, api_key="sk-wrong", model="text-embedding-3-small", dimensions=64
    )
    with pytest.raises(EmbeddingError):
        embedder.embed(["anything"])


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_proxy_with_the_upstream_embedder_serves_repeats(fake_upstream, alice_key, tmp_path):
    env = {
        "CACHE_EMBEDDER": "upstream",
        "CACHE_EMBEDDING_DIMENSIONS": "32",
        "OPENAI_BASE_URL": fake_upstream.v1,
        "OPENAI_API_KEY": UPSTREAM_KEY,
    }
    with live_server(env=env, log_path=tmp_path / "proxy.log") as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=alice_key, max_retries=0)
        question = [{"role": "user", "content": "What is the tallest mountain in Africa?"}]
        first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=question)
        second = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=question)
    assert first.headers["x-synthlang-cache"] == "miss"
    assert second.headers["x-synthlang-cache"] == "hit"
    embedding_calls = [k for k in fake_upstream.stats()["requests"] if k.startswith("/v1/emb")]
    assert embedding_calls, "the upstream embeddings API was never called"
