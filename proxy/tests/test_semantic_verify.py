import pytest

from proxy.semantic_cache.embedding import StaticEmbedder, english_lexicon
from proxy.semantic_cache.index import Candidate
from proxy.semantic_cache.normalize import (
    exact_cache_key,
    fingerprint,
    normalize_for_embedding,
    normalize_text,
)
from proxy.semantic_cache.verify import (
    ALL_CHECKS,
    CHECK_DIRECTION,
    CHECK_ENTITIES,
    CHECK_FORMAT,
    CHECK_NEGATION,
    CHECK_NUMBERS,
    CHECK_ORDER,
    CHECK_QUESTION_TYPE,
    CHECK_QUOTED,
    CHECK_SCOPE,
    CHECK_WORDING,
    DEFAULT_POLICY,
    REJECTED_TOO_LONG,
    first_verified_candidate,
    verify,
)

WORD_VECTORS = StaticEmbedder().word_vectors


@pytest.fixture(scope="module")
def lexicon():
    return english_lexicon()


def check(stored, incoming, lexicon, *, cosine=0.97, policy=DEFAULT_POLICY):
    return verify(
        stored=stored,
        incoming=incoming,
        cosine=cosine,
        policy=policy,
        lexicon=lexicon,
        word_vectors=WORD_VECTORS,
    )


def test_capital_of_france_is_not_the_capital_of_germany(lexicon):
    verdict = check("What is the capital of France?", "What is the capital of Germany?", lexicon)
    assert not verdict.accepted
    assert verdict.rejected_by in {CHECK_ENTITIES, CHECK_WORDING}


def test_paris_to_lyon_is_not_lyon_to_paris(lexicon):
    verdict = check(
        "How do I go from Paris to Lyon?", "How do I go from Lyon to Paris?", lexicon, cosine=0.99
    )
    assert verdict.rejected_by == CHECK_DIRECTION


def test_converting_a_tuple_to_a_list_is_not_converting_a_list_to_a_tuple(lexicon):
    verdict = check("How do I turn a set into a list?", "How do I turn a list into a set?", lexicon)
    assert verdict.rejected_by == CHECK_DIRECTION


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("What is the capital of France?", "what is the captial of france"),
        ("How do I delete a branch in git?", "how do i delet a brnach in git??"),
        ("Is Pluto a planet?", "IS PLUTO A PLANET"),
        ("How do I renew my passport?", "how do I renew my pasport"),
    ],
)
def test_typos_and_case_are_accepted(lexicon, stored, incoming):
    assert check(stored, incoming, lexicon, cosine=0.9).accepted


@pytest.mark.parametrize(
    "incoming",
    [
        "Hi! Sorry to bother you, but why do cats purr? Thanks in advance.",
        "Hey, quick question: why do cats purr?",
        "just curious, why do cats purr",
    ],
)
def test_greetings_and_thanks_around_a_question_are_accepted(lexicon, incoming):
    assert check("Why do cats purr?", incoming, lexicon, cosine=0.93).accepted


def test_different_numbers_are_rejected(lexicon):
    verdict = check("How long is a 5 km run?", "How long is a 50 km run?", lexicon)
    assert verdict.rejected_by == CHECK_NUMBERS


def test_same_number_in_different_units_is_rejected(lexicon):
    verdict = check("How long to walk 10 miles?", "How long to walk 10 km?", lexicon)
    assert verdict.rejected_by == CHECK_NUMBERS


def test_thousands_separators_do_not_change_a_number(lexicon):
    assert check("Is 1,200 mg of ibuprofen safe?", "is 1200 mg of ibuprofen safe", lexicon)


def test_swapped_temperature_scales_are_rejected(lexicon):
    verdict = check(
        "What is 40 degrees Fahrenheit in Celsius?",
        "What is 40 degrees Celsius in Fahrenheit?",
        lexicon,
    )
    assert not verdict.accepted


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("Which mushrooms are safe to eat?", "Which mushrooms are not safe to eat?"),
        ("Is it legal to park here overnight?", "Is it illegal to park here overnight?"),
        ("Can I make bread without yeast?", "Can I make bread with yeast?"),
        ("How do I install Docker?", "How do I uninstall Docker?"),
        ("Why does it charge when off?", "Why doesnt it charge when off?"),
    ],
)
def test_negations_must_agree(lexicon, stored, incoming):
    assert check(stored, incoming, lexicon).rejected_by == CHECK_NEGATION


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        (
            "Explain recursion with an example in Python.",
            "Explain recursion with an example in Go.",
        ),
        ("Give me a short answer: what is DNS?", "Give me a detailed answer: what is DNS?"),
        ("Show the planets as a list.", "Show the planets as a table."),
        ("Write a tweet about our launch.", "Write an email about our launch."),
    ],
)
def test_requested_format_and_scope_must_agree(lexicon, stored, incoming):
    verdict = check(stored, incoming, lexicon)
    assert verdict.rejected_by in {CHECK_FORMAT, CHECK_ENTITIES}


def test_when_is_not_why(lexicon):
    verdict = check("When did the Roman Empire fall?", "Why did the Roman Empire fall?", lexicon)
    assert verdict.rejected_by == CHECK_QUESTION_TYPE


def test_a_small_edit_to_a_content_word_is_rejected_whatever_the_cosine(lexicon):
    verdict = check(
        "What is the capital of Norway?", "What is the currency of Norway?", lexicon, cosine=0.99
    )
    assert verdict.rejected_by == CHECK_WORDING


def test_different_known_words_are_not_mistaken_for_typos(lexicon):
    verdict = check("What is the capital of austria?", "What is the capital of australia?", lexicon)
    assert not verdict.accepted


def test_a_reworded_question_needs_the_paraphrase_cosine_and_is_borderline_below_it(lexicon):
    stored = "How can I make my laptop battery last longer?"
    incoming = "What can I do to extend my laptop's battery life?"
    assert check(stored, incoming, lexicon, cosine=0.96).accepted
    below = check(stored, incoming, lexicon, cosine=0.80)
    assert below.rejected_by == CHECK_WORDING and below.borderline


def test_a_small_edit_is_never_borderline(lexicon):
    verdict = check("How do I grow tomatoes in pots?", "How do I grow peppers in pots?", lexicon)
    assert verdict.rejected_by == CHECK_WORDING and not verdict.borderline


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("Best laptop for programming?", "Best cheap laptop for programming?"),
        ("How do I install and configure nginx?", "How do I install nginx?"),
        ("What are the causes and treatments of gout?", "What are the causes of gout?"),
    ],
)
def test_asking_for_more_or_less_is_another_question_whatever_the_cosine(lexicon, stored, incoming):
    assert check(stored, incoming, lexicon, cosine=0.99).rejected_by == CHECK_SCOPE


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("What does `x -= 1` do?", "What does `x += 1` do?"),
        ("What prints `print(-3 // 2)`?", "What prints `print(3 // 2)`?"),
        ("What does `ls -a` list?", "What does `ls -l` list?"),
    ],
)
def test_inline_code_must_match_to_the_character(lexicon, stored, incoming):
    assert check(stored, incoming, lexicon, cosine=0.99).rejected_by == CHECK_QUOTED


def test_quoted_text_may_lose_its_quotes_and_hyphens(lexicon):
    assert check(
        "Why is my git push rejected with 'non-fast-forward'?",
        "why is my git push rejected with non fast forward??",
        lexicon,
    ).accepted


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("What is -5 squared?", "What is 5 squared?"),
        ("What does i++ do in C?", "What does i-- do?"),
    ],
)
def test_signs_and_operators_outside_code_are_compared_too(lexicon, stored, incoming):
    assert check(stored, incoming, lexicon, cosine=0.99).rejected_by in {
        CHECK_NUMBERS,
        CHECK_QUOTED,
    }


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("Is every square a rectangle?", "Is every rectangle a square?"),
        ("Who is the father of my mother?", "Who is the mother of my father?"),
        ("Which birds hunt snakes?", "Which snakes hunt birds?"),
        ("How do I redirect from HTTP to HTTPS?", "How do I redirect from HTTPS to HTTP?"),
    ],
)
def test_roles_swapped_are_another_question(lexicon, stored, incoming):
    assert check(stored, incoming, lexicon, cosine=0.99).rejected_by == CHECK_DIRECTION


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("Is a tomato a fruit or a vegetable?", "Is a tomato a vegetable or a fruit?"),
        ("What is the capital of Canada?", "What is Canada's capital?"),
        ("How do I reverse a list in Python?", "How do I reverse a Python list?"),
    ],
)
def test_word_order_that_keeps_the_roles_is_the_same_question(lexicon, stored, incoming):
    assert check(stored, incoming, lexicon).accepted


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("Write an argument for school uniforms.", "Write an argument against school uniforms."),
        ("List the pros of remote work.", "List the cons of remote work."),
        ("How do I increase the volume?", "How do I decrease the volume?"),
        ("How do I upload a file?", "How do I download a file?"),
    ],
)
def test_opposite_stance_or_direction_of_change_is_rejected(lexicon, stored, incoming):
    assert not check(stored, incoming, lexicon, cosine=0.99)


@pytest.mark.parametrize(
    ("stored", "incoming"),
    [
        ("Why is the sky blue?", "What causes the sky to look blue?"),
        ("What is the LCM of 4 and 6?", "What is the least common multiple of 4 and 6?"),
        ("How do I fix a flat tire?", "How do I repair a flat tire?"),
        ("When did World War II end?", "When did World War 2 end?"),
    ],
)
def test_why_frames_acronyms_and_synonyms_count_as_the_same_words(lexicon, stored, incoming):
    assert check(stored, incoming, lexicon, cosine=0.9).accepted


def test_every_check_can_be_switched_off(lexicon):
    stored, incoming = "How do I go from Paris to Lyon?", "How do I go from Lyon to Paris?"
    assert not check(stored, incoming, lexicon)
    # Both the direction and the order check see the swap; either alone rejects it.
    assert not check(stored, incoming, lexicon, policy=DEFAULT_POLICY.without(CHECK_DIRECTION))
    assert not check(stored, incoming, lexicon, policy=DEFAULT_POLICY.without(CHECK_ORDER))
    policy = DEFAULT_POLICY.without(CHECK_DIRECTION, CHECK_ORDER)
    assert check(stored, incoming, lexicon, policy=policy)
    assert check(stored, "totally different", lexicon, policy=DEFAULT_POLICY.only())
    assert set(ALL_CHECKS) == set(DEFAULT_POLICY.enabled_checks)


def test_verification_still_works_without_a_lexicon():
    assert verify(stored="What is 2 + 2?", incoming="what is 2 + 2", cosine=0.99).accepted
    assert not verify(stored="What is 2 + 2?", incoming="What is 2 + 3?", cosine=0.99)


def test_first_verified_candidate_skips_candidates_that_fail_verification(lexicon):
    candidates = [
        Candidate(entry_id="austria", score=0.96, text="What is the capital of Austria?"),
        Candidate(entry_id="australia", score=0.95, text="What is the capital of Australia?"),
    ]
    match, rejections = first_verified_candidate(
        candidates=candidates, incoming="what is the capital of australia", lexicon=lexicon
    )
    assert match is not None and match.entry_id == "australia"
    assert [verdict.accepted for verdict in rejections] == [False]


def test_exact_tier_normalisation_ignores_case_spacing_and_final_punctuation():
    assert normalize_text("  What  is DNS?? ") == normalize_text("what is dns")
    assert normalize_text("What is DNS?") != normalize_text("What is DHCP?")


def test_exact_cache_key_depends_on_the_context_fingerprint():
    context_a = fingerprint(parts={"model": "gpt-4o", "temperature": 0})
    context_b = fingerprint(parts={"model": "gpt-4o-mini", "temperature": 0})
    assert exact_cache_key(text="Hi?", context_fingerprint=context_a) == exact_cache_key(
        text="hi", context_fingerprint=context_a
    )
    assert exact_cache_key(text="hi", context_fingerprint=context_a) != exact_cache_key(
        text="hi", context_fingerprint=context_b
    )
    assert fingerprint(parts={"a": 1, "b": 2}) == fingerprint(parts={"b": 2, "a": 1})


def test_a_question_longer_than_the_verified_limit_is_left_to_the_exact_tier():
    document = "Please review this contract clause. " * 100
    verdict = verify(stored=document, incoming=document, cosine=1.0)
    assert verdict.rejected_by == REJECTED_TOO_LONG


def test_a_long_pasted_token_does_not_stall_normalisation(lexicon):
    text = "what does " + "x" * 50_000 + "y mean"
    assert normalize_for_embedding(text=text, lexicon=lexicon).startswith("what does")
