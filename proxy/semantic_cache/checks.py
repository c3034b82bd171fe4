"""The checks of verification, each looking at one thing that decides an answer.

Every check takes the two analysed questions (and, for those comparing wordings, their
``alignment.Alignment``) and returns None (no objection) or the reason it rejects.
"""

from __future__ import annotations

from proxy.semantic_cache.alignment import core_content, expansion_of, words_match
from proxy.semantic_cache.analysis import QuestionAnalysis, Word, stem
from proxy.semantic_cache.normalize import Lexicon
from proxy.semantic_cache.wordlists import (
    NEGATIVE_PREFIXES,
)

# Prefixes that turn a word into its opposite when swapped for each other.
OPPOSITE_PREFIXES = (
    ("in", "de"),
    ("up", "down"),
    ("en", "dis"),
    ("en", "de"),
    ("im", "ex"),
    ("in", "ex"),
    ("in", "out"),
    ("over", "under"),
    ("pre", "post"),
    ("max", "min"),
)
# Words that take a side: a question for and one against are different questions.
_STANCE_WORDS = """
    against favor favour favoring favouring pro pros con cons support supporting oppose
    opposing opposed advantage advantages disadvantage disadvantages benefit benefits drawback
    drawbacks downside downsides upside upsides risk risks danger dangers harm harms
"""
STANCE_STEMS = frozenset(stem(word) for word in _STANCE_WORDS.split())


# --- the checks -------------------------------------------------------------------------------


def check_quoted(first: QuestionAnalysis, second: QuestionAnalysis) -> str | None:
    """Inline code and quoted text of either question reappear unchanged in the other."""
    for source, target in ((first, second), (second, first)):
        for span in source.code:
            if span not in target.code_text:
                return f"inline code {span!r} is not in the other question"
        for span in source.quoted:
            if span not in target.compact:
                return f"quoted text {span!r} is not in the other question"
    return None


def check_numbers(first: QuestionAnalysis, second: QuestionAnalysis) -> str | None:
    first_values = [value for value, _ in first.numbers]
    second_values = [value for value, _ in second.numbers]
    if first_values != second_values and not _same_numbers_otherwise(first, second):
        return f"numbers differ: {first_values} vs {second_values}"
    first_units = [unit for _, unit in first.numbers]
    second_units = [unit for _, unit in second.numbers]
    if first_units != second_units and all(first_units) and all(second_units):
        return f"units differ: {first_units} vs {second_units}"
    if +first.systems != +second.systems:
        return f"scales or currencies differ: {dict(first.systems)} vs {dict(second.systems)}"
    if first.operators != second.operators:
        return f"operators differ: {first.operators} vs {second.operators}"
    return None


def _same_numbers_otherwise(first: QuestionAnalysis, second: QuestionAnalysis) -> bool:
    """The same numbers in another order where order means nothing, or a regnal numeral
    written as an ordinal ("World War II", "the Second World War")."""
    first_values = sorted(value for value, _ in first.numbers)
    second_values = sorted(value for value, _ in second.numbers)
    if first_values == second_values:
        return first.numbers_coordinated or second.numbers_coordinated
    if first.ordinals or second.ordinals:
        return sorted(first_values + first.ordinals) == sorted(second_values + second.ordinals)
    return False


def check_negation(first: QuestionAnalysis, second: QuestionAnalysis) -> str | None:
    """Same negations, no word turned into its opposite by a prefix, the same side taken."""
    if first.negations != second.negations:
        return f"negation count differs: {first.negations} vs {second.negations}"
    first_words = {word.text for word in first.content}
    second_words = {word.text for word in second.content}
    for word in first_words ^ second_words:
        others = second_words if word in first_words else first_words
        for prefix in NEGATIVE_PREFIXES:
            rest = word[len(prefix) :]
            if word.startswith(prefix) and len(rest) >= 3 and rest in others:
                return f"negated by prefix: {word!r}"
        for one, other in OPPOSITE_PREFIXES:
            for mine, theirs in ((one, other), (other, one)):
                rest = word[len(mine) :]
                if word.startswith(mine) and len(rest) >= 3 and theirs + rest in others:
                    return f"opposite prefixes: {word!r} vs {theirs + rest!r}"
    first_polarity = _polarity(first)
    second_polarity = _polarity(second)
    if first_polarity and second_polarity and first_polarity != second_polarity:
        return f"opposite judgement: {sorted(first_polarity)} vs {sorted(second_polarity)}"
    # Small talk aside: "Hello support team" takes no side.
    first_stance = {word.stem for word in core_content(first, second)} & STANCE_STEMS
    second_stance = {word.stem for word in core_content(second, first)} & STANCE_STEMS
    if first_stance != second_stance:
        return f"takes another side: {sorted(first_stance)} vs {sorted(second_stance)}"
    return None


# Judging words: "is coffee good for you" and "is coffee bad for you" ask opposite things.
# Only opposed judgements reject: "a good substitute" and "what can I use instead" do not.
_GOOD = frozenset({"good", "better", "best", "well", "great", "positive"})
_BAD = frozenset({"bad", "worse", "worst", "badly", "poor", "poorly", "negative", "terrible"})


def _polarity(analysis: QuestionAnalysis) -> set[str]:
    texts = {word.text for word in analysis.words}
    return ({"good"} if texts & _GOOD else set()) | ({"bad"} if texts & _BAD else set())


def check_entities(
    first: QuestionAnalysis, second: QuestionAnalysis, *, lexicon: Lexicon | None
) -> str | None:
    """Every name, acronym or identifier of one question appears in the other."""
    for source, target in ((first, second), (second, first)):
        for entity in source.entities:
            if _is_plain_compound(entity, lexicon):
                continue
            if any(words_match(entity, word, lexicon=lexicon) for word in target.words):
                continue
            if expansion_of(entity, target.words) is not None:
                continue
            # "United" of "United Kingdom" against "UK": part of what the acronym stands for.
            if any(entity in (expansion_of(word, source.words) or ()) for word in target.words):
                continue
            return f"entity {entity.original!r} is missing from the other question"
    return None


def _is_plain_compound(word: Word, lexicon: Lexicon | None) -> bool:
    """ "chemical-free", "two-week": English words joined by hyphens, not an identifier."""
    parts = word.original.split("-")
    return (
        lexicon is not None
        and len(parts) > 1
        and word.original.islower()
        and all(part in lexicon for part in parts)
    )


def check_format(first: QuestionAnalysis, second: QuestionAnalysis) -> str | None:
    if first.formats != second.formats:
        return f"requested format differs: {sorted(first.formats)} vs {sorted(second.formats)}"
    return None


def check_question_type(first: QuestionAnalysis, second: QuestionAnalysis) -> str | None:
    both_specific = first.question_words and second.question_words
    if both_specific and first.question_words != second.question_words:
        return (
            f"asks {'/'.join(sorted(first.question_words))} vs "
            f"{'/'.join(sorted(second.question_words))}"
        )
    return None
