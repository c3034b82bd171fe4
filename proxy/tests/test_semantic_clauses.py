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


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("How do I freeze raw shrimp?", "How do I defrost frozen shrimp?"),
        ("How do I break in new hiking boots?", "How do I repair broken hiking boots?"),
        ("How do I hide spare keys outdoors?", "How do I label hidden spare keys?"),
    ],
)
def test_a_verb_turned_into_the_objects_state_with_another_verb_is_rejected(
    lexicon, stored, incoming
):
    # The participle ("frozen") names the state the stored action ("freeze") leads to; the
    # word replaced beside it ("raw" / "defrost") is what the user asks about.
    for first, second in ((stored, incoming), (incoming, stored)):
        verdict = check(first, second, lexicon)
        assert not verdict.accepted
        assert "one verb in two forms" in verdict.reason


def test_verb_forms_alone_are_not_evidence_of_a_different_question(lexicon):
    # Set side by side, nothing else differs: the verb-form rule does not reject.
    verdict = check("When was the castle built?", "When did they build the castle?", lexicon)
    assert "one verb in two forms" not in verdict.reason


def test_unrelated_words_with_the_same_initial_are_not_verb_forms(lexicon):
    from proxy.semantic_cache.alignment import strong_participle_pairs
    from proxy.semantic_cache.analysis import analyse

    first = analyse("prevent proven").content
    second = analyse("present provide").content
    assert strong_participle_pairs(first, second, lexicon, WORD_VECTORS) == []
    frozen = analyse("frozen").content
    freeze = analyse("freeze").content
    assert [
        (a.text, b.text) for a, b in strong_participle_pairs(freeze, frozen, lexicon, WORD_VECTORS)
    ] == [("freeze", "frozen")]
