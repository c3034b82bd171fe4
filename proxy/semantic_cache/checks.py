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
    opposed = _opposed(_poles(first), _poles(second))
    if opposed:
        return f"opposite poles of {', '.join(opposed)}"
    # Small talk aside: "Hello support team" takes no side.
    first_stance = {word.stem for word in core_content(first, second)} & STANCE_STEMS
    second_stance = {word.stem for word in core_content(second, first)} & STANCE_STEMS
    if first_stance != second_stance:
        return f"takes another side: {sorted(first_stance)} vs {sorted(second_stance)}"
    return None


# Opposed poles: "is coffee good for you" and "is coffee bad for you", "foods to eat" and
# "foods to avoid", "make it more sour" and "less sour", "a hot climate" and "a cold one" ask
# opposite things. A question rejects only against one on the other pole: "a good
# substitute" and "what can I use instead" do not. General English antonyms, not a data set's.
_OPPOSED_POLES: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = tuple(
    (name, frozenset(one.split()), frozenset(other.split()))
    for name, one, other in (
        (
            "judgement",
            "good better best well great positive",
            "bad worse worst badly poor poorly negative terrible",
        ),
        (
            "safety",
            "safe safely safer harmless allowed permitted acceptable okay ok edible"
            " healthy beneficial advisable",
            "avoid avoided avoiding unsafe dangerous harmful"
            " toxic poisonous forbidden banned prohibited risky unhealthy inadvisable",
        ),
        (
            "amount",
            "more increase increasing increased raise raising higher high boost"
            " maximize maximise bigger larger greater",
            "less fewer decrease decreasing"
            " decreased reduce reducing lower lowering low minimize minimise smaller",
        ),
        ("temperature", "hot hotter warm warmer heat", "cold colder cool cooler"),
        ("speed", "fast faster quick quickly quicker speed", "slow slower slowly"),
        ("side", "left", "right"),
        ("time", "before early earlier earliest", "after late later latest"),
        ("strength", "strong stronger strongest", "weak weaker weakest"),
    )
)
# "Turn on" and "turn off" are poles only after a verb of switching: "aphids on roses" and
# "keep aphids off roses" are places.
_SWITCH_VERBS = frozenset(
    {"turn", "turned", "turning", "turns", "switch", "switched", "switching", "toggle"}
    | {"log", "sign", "opt", "power"}
)


def _poles(analysis: QuestionAnalysis) -> set[str]:
    texts = [word.text for word in analysis.words]
    found = set(texts)
    poles = set()
    for name, one, other in _OPPOSED_POLES:
        if found & one:
            poles.add(f"{name}:{sorted(one)[0]}")
        if found & other:
            poles.add(f"{name}:{sorted(other)[0]}")
    for before, text in zip(texts, texts[1:], strict=False):
        if before in _SWITCH_VERBS and text in {"on", "off"}:
            poles.add(f"switch:{text}")
    return poles


def _opposed(first: set[str], second: set[str]) -> list[str]:
    """The scales on which each question takes one pole and the other the opposite one (a
    question holding both poles, "hot ... keep it cooler", opposes nothing)."""
    scales = {pole.split(":")[0] for pole in first} & {pole.split(":")[0] for pole in second}
    opposed = []
    for scale in sorted(scales):
        mine = {pole for pole in first if pole.startswith(scale + ":")}
        theirs = {pole for pole in second if pole.startswith(scale + ":")}
        if not mine & theirs:
            opposed.append(scale)
    return opposed


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
