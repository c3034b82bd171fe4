"""The order check (arguments that trade places, however far apart), the opposed poles of
the negation check, and "non-X" against "X". Sentences written for these tests, not taken
from an evaluation set."""

import pytest

from proxy.semantic_cache.embedding import StaticEmbedder, english_lexicon
from proxy.semantic_cache.normalize import repair_spelling, word_set
from proxy.semantic_cache.verify import (
    CHECK_DIRECTION,
    CHECK_NEGATION,
    CHECK_ORDER,
    VerificationPolicy,
    verify,
)

WORD_VECTORS = StaticEmbedder().word_vectors
POLICY = VerificationPolicy(paraphrase_threshold=0.85)


@pytest.fixture(scope="module")
def lexicon():
    return english_lexicon()


def check(stored, incoming, lexicon, *, cosine=0.99, policy=POLICY):
    return verify(
        stored=stored,
        incoming=incoming,
        cosine=cosine,
        policy=policy,
        lexicon=lexicon,
        word_vectors=WORD_VECTORS,
    )


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("Is every electric car a hybrid vehicle?", "Is every hybrid vehicle an electric car?"),
        (
            "Can a junior developer review a senior engineer?",
            "Can a senior engineer review a junior developer?",
        ),
        (
            "What did the Vikings trade with the Byzantines?",
            "What did the Byzantines trade with the Vikings?",
        ),
        ("Is a hedge fund a kind of mutual fund?", "Is a mutual fund a kind of hedge fund?"),
    ],
)
def test_arguments_that_trade_places_are_another_question(lexicon, stored, incoming):
    verdict = check(stored, incoming, lexicon)
    assert not verdict.accepted
    assert verdict.rejected_by in {CHECK_DIRECTION, CHECK_ORDER}
    # The order check alone sees the swap too, whatever stands between the arguments.
    alone = check(stored, incoming, lexicon, policy=POLICY.only(CHECK_ORDER))
    assert alone.rejected_by == CHECK_ORDER


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        # a modifier moved into or out of a prepositional phrase
        ("How do I sort a dictionary in Python?", "How do I sort a Python dictionary?"),
        ("What is the formula for compound interest?", "What is the compound interest formula?"),
        # the passive voice
        ("How do I calculate the area of a circle?", "How is the area of a circle calculated?"),
        # a modifier become a predicate after "be"
        ("What is the tallest building in Europe?", "Which building in Europe is the tallest?"),
        # an owner
        ("What is the plot of Moby Dick?", "What is Moby Dick's plot?"),
        # coordination
        ("What is the difference between TCP and UDP?", "How do UDP and TCP differ?"),
        # another clause
        ("In Go, how do I read a file?", "How do I read a file in Go?"),
    ],
)
def test_a_reordering_the_language_explains_is_no_objection(lexicon, stored, incoming):
    alone = check(stored, incoming, lexicon, policy=POLICY.only(CHECK_ORDER))
    assert alone.accepted, alone.reason


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("How do I make my espresso stronger?", "How do I make my espresso weaker?"),
        ("Which foods are safe for dogs?", "Which foods should dogs avoid?"),
        ("How do I turn on Bluetooth on a Mac?", "How do I turn off Bluetooth on a Mac?"),
        (
            "How do I make a sauce thicker and more salty?",
            "How do I make a sauce thicker and less salty?",
        ),
        (
            "Should I water orchids before repotting them?",
            "Should I water orchids after repotting them?",
        ),
    ],
)
def test_opposite_poles_are_another_question(lexicon, stored, incoming):
    verdict = check(stored, incoming, lexicon)
    assert verdict.rejected_by == CHECK_NEGATION, verdict


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        # both questions on both poles
        (
            "My phone gets hot while charging; how can I keep it cool?",
            "How do I keep my phone cool when it gets hot while charging?",
        ),
        # "off" as a place, not a switch
        ("How do I keep deer off my lawn?", "How do I keep deer away from my lawn?"),
    ],
)
def test_poles_held_by_both_questions_or_places_are_no_objection(lexicon, stored, incoming):
    verdict = check(stored, incoming, lexicon, policy=POLICY.only(CHECK_NEGATION))
    assert verdict.accepted, verdict.reason


def test_a_word_after_non_is_not_the_plain_word(lexicon):
    verdict = check(
        "How do I switch from a root user to a non-root user?",
        "How do I switch from a non-root user to a root user?",
        lexicon,
    )
    assert not verdict.accepted
    # Split or hyphenated, "non fast forward" is still "non-fast-forward".
    assert check(
        "Why is my push rejected as non-fast-forward?",
        "why is my push rejected as non fast forward",
        lexicon,
    ).accepted


def test_a_prefixed_word_is_not_repaired_into_the_other_questions_word(lexicon):
    # "unsubscribe" is two edits from "subscribe": a prefix, not a typo.
    repaired = repair_spelling(
        text="how do i unsubscribe from a newsletter",
        lexicon=lexicon,
        protected=word_set("How do I subscribe to a newsletter?"),
    )
    assert "unsubscribe" in repaired
    verdict = check("How do I pin a chat in Signal?", "How do I unpin a chat in Signal?", lexicon)
    assert verdict.rejected_by == CHECK_NEGATION


def test_a_possessive_is_not_repaired_away_and_owners_that_trade_places_are_refused(lexicon):
    repaired = repair_spelling(
        text="Who is my mother's cousin to me?",
        lexicon=lexicon,
        protected=word_set("Who is my cousin's mother to me?"),
    )
    assert "mother's" in repaired
    verdict = check("Who is my cousin's mother to me?", "Who is my mother's cousin to me?", lexicon)
    assert not verdict.accepted
    assert check("What is Peru's capital?", "What is the capital of Peru?", lexicon).accepted
