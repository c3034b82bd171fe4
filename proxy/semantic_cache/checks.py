"""The checks of verification, each looking at one thing that decides an answer.

Every check takes the two analysed questions (and, for those comparing wordings, their
``alignment.Alignment``) and returns None (no objection) or the reason it rejects.
"""

from __future__ import annotations

from collections import Counter

from proxy.semantic_cache.alignment import Alignment, core_content, expansion_of, words_match
from proxy.semantic_cache.analysis import (
    DIRECTION_CONNECTORS,
    NEGATIVE_PREFIXES,
    SYMMETRIC_CONNECTORS,
    QuestionAnalysis,
    Word,
    stem,
)
from proxy.semantic_cache.normalize import Lexicon

_RELATION_SPAN = 5
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
    if first_values != second_values:
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
    # Small talk aside: "Hello support team" takes no side.
    first_stance = {word.stem for word in core_content(first, second)} & STANCE_STEMS
    second_stance = {word.stem for word in core_content(second, first)} & STANCE_STEMS
    if first_stance != second_stance:
        return f"takes another side: {sorted(first_stance)} vs {sorted(second_stance)}"
    return None


def check_direction(
    first: QuestionAnalysis, second: QuestionAnalysis, alignment: Alignment
) -> str | None:
    """Two words related in both questions ("A to B", "X of Y") whose order flips."""
    owners = _possessive_stems(first) | {
        alignment.partner[w.position].stem if w.position in alignment.partner else w.stem
        for w in second.content
        if w.possessive
    }
    first_anchors = _anchors(first, {}, owners)
    second_anchors = _anchors(second, alignment.partner, owners)
    shared = sorted(
        (key for key in first_anchors if key in second_anchors),
        key=lambda key: first_anchors[key][0],
    )
    for index, left in enumerate(shared):
        for right in shared[index + 1 :]:
            first_pair = (first_anchors[left], first_anchors[right])
            # Related words stand at most _RELATION_SPAN apart: later ones cannot be related.
            if first_pair[1][0] - first_pair[0][0] > _RELATION_SPAN + 1:
                break
            second_pair = (second_anchors[left], second_anchors[right])
            if second_pair[0][0] < second_pair[1][0]:
                continue
            if not (_related(first, *first_pair) and _related(second, *second_pair)):
                continue
            if _modifier_moved(first, first_pair) or _modifier_moved(second, second_pair):
                continue
            return f"order of {left[0]!r} and {right[0]!r} is reversed"
    return None


def _possessive_stems(analysis: QuestionAnalysis) -> set[str]:
    return {word.stem for word in analysis.content if word.possessive}


def _anchors(
    analysis: QuestionAnalysis, partner: dict[int, Word], owners: set[str]
) -> dict[tuple[str, int], tuple[float, Word]]:
    """Each substantive word under the key of the word it stands for, with its order.

    An owner stands after the noun phrase it owns: "China's first emperor" orders like "the
    first emperor of China". A word written possessive in either question ("tenant's
    rights", "tenants rights") is read as an owner in both.
    """
    seen: Counter = Counter()
    anchors: dict[tuple[str, int], tuple[float, Word]] = {}
    content = analysis.content
    for index, word in enumerate(content):
        key_stem = partner[word.position].stem if word.position in partner else word.stem
        order = float(word.position)
        if word.possessive or key_stem in owners:
            last = index
            while (
                last + 1 < len(content)
                and content[last + 1].position == content[last].position + 1
                and content[last + 1].segment == word.segment
            ):
                last += 1
            if last > index:
                order = content[last].position + 0.5
        anchors[(key_stem, seen[key_stem])] = (order, word)
        seen[key_stem] += 1
    return anchors


# "a list in Python" and "a Python list" say the same: a prepositional modifier moved before
# the noun it modifies.
_MODIFIER_PREPOSITIONS = frozenset({"in", "on", "at", "for", "of"})


def _modifier_moved(analysis: QuestionAnalysis, pair: tuple) -> bool:
    (_, one), (_, other) = pair
    low, high = sorted((one.position, other.position))
    between = [word.text for word in analysis.words if low < word.position < high]
    return len(between) == 1 and between[0] in _MODIFIER_PREPOSITIONS


def _related(analysis: QuestionAnalysis, first: tuple, second: tuple) -> bool:
    """Within one clause, joined by a directed word or next to each other, not by "and"/"or"."""
    (_, one), (_, other) = first, second
    if one.segment != other.segment:
        return False
    low, high = sorted((one.position, other.position))
    between = [word.text for word in analysis.words if low < word.position < high]
    if any(text in SYMMETRIC_CONNECTORS for text in between):
        return False
    if one.possessive or other.possessive:
        return True
    if high - low <= 2:
        return True
    if high - low > _RELATION_SPAN:
        return False
    return any(text in DIRECTION_CONNECTORS for text in between)


def check_entities(
    first: QuestionAnalysis, second: QuestionAnalysis, *, lexicon: Lexicon | None
) -> str | None:
    """Every name, acronym or identifier of one question appears in the other."""
    for source, target in ((first, second), (second, first)):
        for entity in source.entities:
            if any(words_match(entity, word, lexicon=lexicon) for word in target.words):
                continue
            if expansion_of(entity, target.words) is not None:
                continue
            if any(expansion_of(word, [entity]) for word in target.entities):
                continue
            return f"entity {entity.original!r} is missing from the other question"
    return None


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


def check_scope(alignment: Alignment) -> str | None:
    """One question asks about something the other leaves out: more, or less, than it."""
    if bool(alignment.only_first) == bool(alignment.only_second):
        return None
    extra = alignment.only_first or alignment.only_second
    side = "stored" if alignment.only_first else "incoming"
    return f"only the {side} question asks about {sorted({w.text for w in extra})}"


def check_wording(alignment: Alignment, *, cosine: float, paraphrase_threshold: float):
    """Both questions have words the other lacks: a small edit, or a rewording.

    A small edit to an otherwise identical question is deliberate: the edited word is what
    the user asks about ("benefits" -> "risks", "Java" -> "Kotlin"), so it is rejected
    whatever the cosine. A thorough rewording is left to the embedding, with a bar of its
    own; below the bar the pair is *borderline* (a verifier model may still accept it).
    Returns (reason, borderline) or None.
    """
    only_first, only_second = alignment.only_first, alignment.only_second
    if not only_first or not only_second:
        return None
    differing = sorted({word.text for word in only_first + only_second})
    changed = max(len(only_first), len(only_second))
    # One word replaced, or two in a question that otherwise stays the same (at least 60%
    # of its words kept): the replaced words are the question.
    swapped_one = changed == 1 and alignment.matched >= 1
    edited_two = changed == 2 and alignment.matched >= 3
    if swapped_one or edited_two:
        return f"a small edit changes the question: {differing}", False
    if cosine < paraphrase_threshold:
        return f"reworded ({differing}) and cosine {cosine:.3f} < {paraphrase_threshold:.2f}", True
    return None
