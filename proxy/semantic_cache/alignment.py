"""Pairing the words of two questions: what each has that the other lacks.

``align`` pairs words once, cheapest evidence first (same stem, a likely typo, a compound
written solid or split, an acronym and its expansion, a synonym), for the checks that compare
wordings. ``core_content`` sets small talk at either end of a question aside first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from proxy.semantic_cache.analysis import QuestionAnalysis, Word
from proxy.semantic_cache.normalize import Lexicon, edit_distance
from proxy.semantic_cache.wordlists import (
    DISCOURSE_WORDS,
    FORMAT_TERMS,
    FRAMING_WORDS,
    FUNCTION_WORDS,
    INTERROGATIVE_WORDS,
)

# Word vectors of single words, for synonyms: texts -> unit rows.
WordVectors = Callable[[list[str]], np.ndarray]

# Two different words count as the same word when their vectors are this close. Measured on
# general English word lists (synonyms, antonyms, co-hyponyms such as two chemicals or two
# countries) with the static model: every antonym and co-hyponym scored below 0.71, and
# "hard/difficult", "begin/start", "fix/repair", "buy/purchase" at 0.75 to 0.85.
SYNONYM_SIMILARITY = 0.75
# A verb and its strong participle, measured with the static model on 38 irregular verbs:
# "freeze/frozen" 0.60, "write/written" 0.68, "give/given" 0.53; unrelated words starting with
# the same letter score near 0 ("present/prevent", "proven/provide").
PARTICIPLE_SIMILARITY = 0.5


def words_match(first: Word, second: Word, *, lexicon: Lexicon | None) -> bool:
    if first.text == second.text or first.stem == second.stem:
        return True
    # Two different known words are different words ("Austria"/"Australia", "breaks"/"brakes"):
    # fuzzy matching is only for a word the lexicon does not know, i.e. a likely typo.
    if lexicon is not None and first.text in lexicon and second.text in lexicon:
        return False
    shorter = min(len(first.text), len(second.text))
    if shorter < 4:
        return False
    allowed = 1 if shorter < 8 else 2
    return edit_distance(first.text, second.text, limit=allowed) <= allowed


def expansion_of(acronym: Word, words: list[Word]) -> list[Word] | None:
    """Consecutive words whose initials spell the acronym ("LCM": least common multiple)."""
    if not acronym.is_acronym:
        return None
    letters = acronym.original.split("'")[0].lower()
    for start in range(len(words) - len(letters) + 1):
        run = words[start : start + len(letters)]
        consecutive = all(b.position == a.position + 1 for a, b in zip(run, run[1:], strict=False))
        if consecutive and "".join(word.text[0] for word in run) == letters:
            return run
    return None


@dataclass
class Alignment:
    """The substantive words each question has that the other does not."""

    only_first: list[Word] = field(default_factory=list)
    only_second: list[Word] = field(default_factory=list)
    matched: int = 0
    # second word position -> the first word it was paired with (for word order)
    partner: dict[int, Word] = field(default_factory=dict)
    # Leftover words that are one verb in two forms ("freeze" / "frozen"): evidence for
    # rejection only (``scope.check_wording``), never a pairing that makes two questions alike.
    verb_forms: list[tuple[Word, Word]] = field(default_factory=list)


def align(
    first: QuestionAnalysis,
    second: QuestionAnalysis,
    *,
    lexicon: Lexicon | None,
    word_vectors: WordVectors | None,
) -> Alignment:
    """Pair the questions' words, cheapest evidence first; what is left over differs."""
    first_core = [w for w in core_content(first, second) if w.text not in FRAMING_WORDS]
    second_core = [w for w in core_content(second, first) if w.text not in FRAMING_WORDS]
    result = Alignment()
    by_stem: dict[str, list[Word]] = {}
    for word in second_core:
        by_stem.setdefault(word.stem, []).append(word)
    leftover_first: list[Word] = []
    for word in first_core:
        partners = by_stem.get(word.stem)
        if partners:
            result.partner[partners.pop().position] = word
            result.matched += 1
        else:
            leftover_first.append(word)
    leftover_second = sorted(
        (word for words in by_stem.values() for word in words), key=lambda w: w.position
    )
    # Likely typos of words the lexicon does not know.
    for word in list(leftover_first):
        partner = next((o for o in leftover_second if words_match(word, o, lexicon=lexicon)), None)
        if partner is not None:
            leftover_first.remove(word)
            leftover_second.remove(partner)
            result.partner[partner.position] = word
            result.matched += 1
    leftover_first, leftover_second = _without_compounds(leftover_first, leftover_second)
    leftover_first, leftover_second = _without_acronyms(
        first, second, leftover_first, leftover_second, result
    )
    leftover_first = _without_ordinals_written_as_numerals(first, second, leftover_first, result)
    leftover_second = _without_ordinals_written_as_numerals(second, first, leftover_second, result)
    if word_vectors is not None and leftover_first and leftover_second:
        _pair_synonyms(leftover_first, leftover_second, result, lexicon, word_vectors)
    result.only_first, result.only_second = leftover_first, leftover_second
    if word_vectors is not None and leftover_first and leftover_second:
        result.verb_forms = strong_participle_pairs(
            leftover_first, leftover_second, lexicon, word_vectors
        )
    return result


def _without_compounds(first: list[Word], second: list[Word]) -> tuple[list[Word], list[Word]]:
    """Match a word written solid on one side and split on the other ("powerbank", "power bank")."""
    first_left, second_left = list(first), list(second)
    for solid_side, split_side in ((first_left, second_left), (second_left, first_left)):
        for left, right in zip(list(split_side), list(split_side)[1:], strict=False):
            if right.position != left.position + 1:
                continue
            solid = next((w for w in solid_side if w.text == left.text + right.text), None)
            if solid is not None and left in split_side and right in split_side:
                solid_side.remove(solid)
                split_side.remove(left)
                split_side.remove(right)
    return first_left, second_left


def _without_acronyms(first, second, first_left, second_left, result):
    for other, side_left, other_left in (
        (second, first_left, second_left),
        (first, second_left, first_left),
    ):
        for word in list(side_left):
            run = expansion_of(word, other.words)
            if run is not None and all(w in other_left for w in run if w in other.content):
                side_left.remove(word)
                for expanded in run:
                    if expanded in other_left:
                        other_left.remove(expanded)
                result.matched += 1
    return first_left, second_left


def _without_ordinals_written_as_numerals(mine, theirs, leftover, result):
    """ "The Second World War" and "World War II": the ordinal is the other's numeral."""
    numerals = {value for value, _ in theirs.numbers}
    kept = []
    for word in leftover:
        if mine.ordinal_positions.get(word.position) in numerals:
            result.matched += 1
        else:
            kept.append(word)
    return kept


def strong_participle_pairs(first_left, second_left, lexicon, word_vectors) -> list:
    """Leftover (first, second) words that are a verb and its strong participle.

    No stemmer joins "freeze" and "frozen" or "write" and "written" (the vowel changes), and
    their vectors sit below the synonym bar. Evidence: one word ends in "n" and the other does
    not, both start with the same letter, both are known words, and their vectors agree far
    more than unrelated words' do.
    """

    def known(word: Word) -> bool:
        return word.text.isalpha() and (lexicon is None or word.text in lexicon)

    pairs: list[tuple[Word, Word]] = []
    used: set[int] = set()
    for participle_side, verb_side, participle_first in (
        (first_left, second_left, True),
        (second_left, first_left, False),
    ):
        participles = [w for w in participle_side if known(w) and w.text.endswith("n")]
        verbs = [w for w in verb_side if known(w) and not w.text.endswith("n")]
        if not participles or not verbs:
            continue
        vectors = word_vectors([w.text for w in participles] + [w.text for w in verbs])
        similarity = vectors[: len(participles)] @ vectors[len(participles) :].T
        for i, participle in enumerate(participles):
            for j, verb in enumerate(verbs):
                if id(participle) in used or id(verb) in used:
                    continue
                if participle.text[0] != verb.text[0] or similarity[i, j] < PARTICIPLE_SIMILARITY:
                    continue
                used.update({id(participle), id(verb)})
                pairs.append((participle, verb) if participle_first else (verb, participle))
    return pairs


def _pair_synonyms(first_left, second_left, result, lexicon, word_vectors) -> None:
    def eligible(word: Word) -> bool:
        # Names and identifiers must match as written; a synonym is an ordinary word.
        known = lexicon is None or word.text in lexicon
        return word.text.isalpha() and known and not word.original[:1].isupper()

    firsts = [w for w in first_left if eligible(w)]
    seconds = [w for w in second_left if eligible(w)]
    if not firsts or not seconds:
        return
    vectors = word_vectors([w.text for w in firsts] + [w.text for w in seconds])
    similarity = vectors[: len(firsts)] @ vectors[len(firsts) :].T
    # Greedy, best pair first: each word pairs at most once.
    for flat in np.argsort(-similarity, axis=None):
        i, j = divmod(int(flat), len(seconds))
        if similarity[i, j] < SYNONYM_SIMILARITY:
            break
        if firsts[i] in first_left and seconds[j] in second_left:
            first_left.remove(firsts[i])
            second_left.remove(seconds[j])
            result.partner[seconds[j].position] = firsts[i]
            result.matched += 1


def core_content(analysis: QuestionAnalysis, other: QuestionAnalysis) -> list[Word]:
    """Content words once small talk around the question is set aside.

    A leading or trailing segment ("Hi, I'm a parent and I was wondering:", "Thanks in advance")
    is small talk when it shares no content with the other question, carries a politeness or
    hedging word, holds at most three other content words and asks for no format.
    """
    segments: dict[int, list[Word]] = {}
    for word in analysis.words:
        segments.setdefault(word.segment, []).append(word)
    order = sorted(segments)
    droppable: set[int] = set()
    for edge in (order, list(reversed(order))):
        for index in edge[:-1]:
            if not _is_small_talk(segments[index], other):
                break
            droppable.add(index)
    if len(droppable) >= len(order):
        droppable = set()
    return [word for word in analysis.content if word.segment not in droppable]


def _is_small_talk(words: list[Word], other: QuestionAnalysis) -> bool:
    content = [
        word
        for word in words
        if word.text not in FUNCTION_WORDS and word.text not in DISCOURSE_WORDS
    ]
    if any(word.stem in other.content_stems for word in content):
        return False
    # A clause that asks a question of its own about something ("..., and how much does it
    # cost?") is a second request, however few its content words: "much" is small talk in
    # "thanks so much", not in "how much".
    if content and any(word.text in INTERROGATIVE_WORDS for word in words):
        return False
    if any(FORMAT_TERMS.get(word.text) or FORMAT_TERMS.get(word.stem) for word in words):
        return False
    has_discourse = any(word.text in DISCOURSE_WORDS for word in words)
    return (has_discourse or not content) and len(content) <= 3
