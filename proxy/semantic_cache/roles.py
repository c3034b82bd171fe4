"""Roles: the same words in the same relation, the right way round.

"Convert dollars to euros" and "convert euros to dollars", "is every X a Y" and "is every Y
an X", "a parent inherits from a child" and "a child inherits from a parent" share every
word. Evidence that roles changed: two words related in both questions (next to each
other, or joined by a directed word) in the opposite order; two words trading sides around
the same third one; a preposition whose object is named in one question and asked for in
the other.
"""

from __future__ import annotations

from collections import Counter

from proxy.semantic_cache.alignment import Alignment
from proxy.semantic_cache.analysis import QuestionAnalysis, Word
from proxy.semantic_cache.wordlists import (
    DIRECTION_CONNECTORS,
    FUNCTION_WORDS,
    SYMMETRIC_CONNECTORS,
)

_RELATION_SPAN = 5


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
    return _arguments_swapped(first, second, first_anchors, second_anchors, shared) or (
        _stranded_preposition(first, second, alignment)
    )


# Forms of "be" that, before a verb followed by "by", make a clause passive.
_BE_FORMS = frozenset({"is", "are", "was", "were", "be", "been", "being", "am"})


def _arguments_swapped(first, second, first_anchors, second_anchors, shared) -> str | None:
    """ "A parent inherits a house from a child" and "a child inherits a house from a
    parent": two words trade sides around the same word of one clause. A passive clause
    ("was painted by") swaps them without changing the roles, so it is not evidence."""
    if _is_passive(first) != _is_passive(second):
        return None
    for middle in shared:
        for left in shared:
            for right in shared:
                if len({middle, left, right}) < 3:
                    continue
                a, m, b = (first_anchors[key] for key in (left, middle, right))
                c, n, d = (second_anchors[key] for key in (left, middle, right))
                if not (a[0] < m[0] < b[0] and d[0] < n[0] < c[0]):
                    continue
                related = (
                    _related(first, a, m)
                    and _related(first, m, b)
                    and _related(second, d, n)
                    and _related(second, n, c)
                )
                if related:
                    return f"{left[0]!r} and {right[0]!r} trade places around {middle[0]!r}"
    return None


def _is_passive(analysis: QuestionAnalysis) -> bool:
    words = analysis.words
    for index, word in enumerate(words):
        if word.text != "by" or index < 2:
            continue
        if any(w.text in _BE_FORMS for w in words[max(index - 4, 0) : index - 1]):
            return True
    return False


def _stranded_preposition(
    first: QuestionAnalysis, second: QuestionAnalysis, alignment: Alignment
) -> str | None:
    """ "Which animals prey on wolves?" and "Which animals do wolves prey on?": the same verb
    and preposition, its object named in one and asked for in the other."""
    first_uses = _preposition_uses(first, {})
    second_uses = _preposition_uses(second, alignment.partner)
    for (verb, preposition), stranded in first_uses.items():
        if second_uses.get((verb, preposition), stranded) != stranded:
            return f"{verb!r} {preposition!r}: its object is asked for in one question only"
    return None


def _preposition_uses(analysis: QuestionAnalysis, partner: dict) -> dict[tuple[str, str], bool]:
    """(stem of the word before a directed preposition, the preposition) -> whether the
    preposition ends its clause (stranded) rather than leading to its object."""
    uses: dict[tuple[str, str], bool] = {}
    words = analysis.words
    for index, word in enumerate(words[1:], start=1):
        before = words[index - 1]
        if word.text not in DIRECTION_CONNECTORS or before.position != word.position - 1:
            continue
        if before.text in FUNCTION_WORDS or not before.text[:1].isalpha():
            continue
        after = words[index + 1] if index + 1 < len(words) else None
        stranded = after is None or after.segment != word.segment
        leads = after is not None and not stranded and after.text not in FUNCTION_WORDS
        if stranded or leads:
            key_stem = partner[before.position].stem if before.position in partner else before.stem
            uses[(key_stem, word.text)] = stranded
    return uses


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
    content = analysis.content
    keys = [partner[w.position].stem if w.position in partner else w.stem for w in content]
    orders = [float(word.position) for word in content]
    for index, word in enumerate(content):
        if not (word.possessive or keys[index] in owners):
            continue
        last = index
        while _next_to(content, last, last + 1):
            last += 1
        if last == index:
            continue
        orders[index] = content[last].position + 0.5
        # The owner's own modifiers move with it: "table salt's formula", "formula of table salt".
        first = index
        while first > 0 and _next_to(content, first - 1, first):
            first -= 1
            orders[first] = orders[index] - 0.01 * (index - first)
    seen: Counter = Counter()
    anchors: dict[tuple[str, int], tuple[float, Word]] = {}
    for key_stem, order, word in zip(keys, orders, content, strict=True):
        anchors[(key_stem, seen[key_stem])] = (order, word)
        seen[key_stem] += 1
    return anchors


def _next_to(content: list[Word], left: int, right: int) -> bool:
    return (
        left >= 0
        and right < len(content)
        and content[right].position == content[left].position + 1
        and content[right].segment == content[left].segment
    )


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
