"""Mechanisms over the language added for unseen pairs (decision 0021, held-out set 4).

Every sentence here was written for the test; none comes from an evaluation set.
"""

import pytest

from proxy.semantic_cache.embedding import StaticEmbedder, english_lexicon
from proxy.semantic_cache.verify import CHECK_SCOPE, verify

WORD_VECTORS = StaticEmbedder().word_vectors


@pytest.fixture(scope="module")
def lexicon():
    return english_lexicon()


def check(stored, incoming, lexicon, *, cosine=0.99):
    return verify(
        stored=stored, incoming=incoming, cosine=cosine, lexicon=lexicon, word_vectors=WORD_VECTORS
    )


@pytest.mark.parametrize(
    ("longer", "shorter"),
    [
        (
            "Which permits does a food truck need in Ohio, and how much do they cost?",
            "Which permits does a food truck need in Ohio?",
        ),
        ("How do I join the rowing club, and when does it meet?", "How do I join the rowing club?"),
        ("What does a glazier do, and why is it paid so well?", "What does a glazier do?"),
    ],
)
def test_a_trailing_question_clause_is_a_request_not_small_talk(lexicon, longer, shorter):
    # "much" alone is small talk ("thanks so much"); "how much does it cost" asks for more.
    for stored, incoming in ((longer, shorter), (shorter, longer)):
        verdict = check(stored, incoming, lexicon)
        assert not verdict.accepted
        assert verdict.rejected_by == CHECK_SCOPE


@pytest.mark.parametrize(
    "incoming",
    [
        "Which permits does a food truck need in Ohio? Thanks so much!",
        "Hi, how are you? Which permits does a food truck need in Ohio?",
        "Which permits does a food truck need in Ohio? Anyone know?",
    ],
)
def test_small_talk_with_a_question_word_but_no_content_is_still_small_talk(lexicon, incoming):
    assert check("Which permits does a food truck need in Ohio?", incoming, lexicon).accepted
