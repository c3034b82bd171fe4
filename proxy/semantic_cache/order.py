"""Order: the shared words of two questions stand in the same order, or the change is a move.

"Is every integer a natural number?" and "Is every natural number an integer?" pair every
word, yet ask opposite things: the arguments of the relation traded places. The direction
check (``roles``) catches two related words next to each other or joined by a directed word;
this one compares the order of every two paired words of one clause, whatever stands between
them, and accepts an inversion only where the language explains it without a change of roles:

- the words are coordinated ("weather and climate", "between X and Y") in either question;
- one of them is an owner ("Hamlet's plot", "the plot of Hamlet") in either question;
- a modifier moved into or out of a prepositional phrase while the other word kept its place
  ("a virtual environment in Python", "a Python virtual environment"; "the formula for BMI",
  "the BMI formula"); a swap of the fillers of the same frame ("the son of my aunt", "the
  aunt of my son") changes both words' places and is not a move;
- one question is in the passive voice and the other is not ("how is X calculated", "how do
  I calculate X");
- a clause moved: words of different clauses are never compared; a word taken up again by a
  pronoun ("a shell script ... when I run it") is not a new argument.
"""

from __future__ import annotations

from proxy.semantic_cache.alignment import Alignment
from proxy.semantic_cache.analysis import QuestionAnalysis, Word
from proxy.semantic_cache.wordlists import FRAMING_WORDS, SYMMETRIC_CONNECTORS

# Past this many words apart, two words of one clause are rarely arguments of one relation.
_ORDER_SPAN = 8
# Prepositions that attach a modifier which may also stand before its noun ("in Python",
# "for BMI"). Directed ones ("from", "to", "than", "by") mark a role and never excuse a move.
_MODIFIER_PREPOSITIONS = frozenset(
    {"in", "on", "at", "for", "of", "with", "without", "using", "during", "via", "within", "inside"}
)
# Skipped when looking for the word that introduces a phrase: "in a Python", "of my aunt".
_DETERMINERS = frozenset(
    {"a", "an", "the", "my", "your", "his", "her", "its", "our", "their", "this", "that"}
    | {"these", "those", "every", "each", "some", "any", "all"}
)
_BE_FORMS = frozenset({"is", "are", "was", "were", "be", "been", "being", "am", "get", "gets"})
_IRREGULAR_PARTICIPLES = frozenset(
    {"made", "done", "built", "paid", "sold", "told", "held", "kept", "found", "taught", "bought"}
)


def check_order(
    first: QuestionAnalysis, second: QuestionAnalysis, alignment: Alignment
) -> str | None:
    """Two paired words of one clause stand in the opposite order without a move to explain it."""
    if _is_passive(first) != _is_passive(second):
        return None
    pairs = [
        (alignment.partner[word.position], word)
        for word in second.content
        if word.position in alignment.partner and word.text not in FRAMING_WORDS
    ]
    pairs = [(one, two) for one, two in pairs if one.text not in FRAMING_WORDS]
    pairs.sort(key=lambda pair: pair[0].position)
    first_blocks = _blocks(first)
    second_blocks = _blocks(second)
    for index, (left_one, left_two) in enumerate(pairs):
        for right_one, right_two in pairs[index + 1 :]:
            if right_one.position - left_one.position > _ORDER_SPAN:
                break
            if left_one.stem == right_one.stem or left_two.position < right_two.position:
                continue
            if abs(left_two.position - right_two.position) > _ORDER_SPAN:
                continue
            if left_one.segment != right_one.segment or left_two.segment != right_two.segment:
                continue
            one_pair, two_pair = (left_one, right_one), (left_two, right_two)
            if _explained(first, second, one_pair, two_pair, first_blocks, second_blocks):
                continue
            return f"{left_one.text!r} and {right_one.text!r} stand in the opposite order"
    return None


def _explained(first, second, one_pair, two_pair, first_blocks, second_blocks) -> bool:
    """Whether the language explains this inversion without a change of roles (see above)."""
    (left_one, right_one), (left_two, right_two) = one_pair, two_pair
    if _coordinated(first, left_one, right_one) or _coordinated(second, right_two, left_two):
        return True
    # An owner stands after what it owns ("Hamlet's plot", "the plot of Hamlet"), unless the
    # two words traded the owner's part ("my uncle's father", "my father's uncle").
    first_owners = [_owner(first_blocks, word) for word in one_pair]
    second_owners = [_owner(second_blocks, word) for word in two_pair]
    if any(first_owners) or any(second_owners):
        return not (any(first_owners) and any(second_owners) and first_owners != second_owners)
    left_leads = (_lead(first, first_blocks, left_one), _lead(second, second_blocks, left_two))
    right_leads = (_lead(first, first_blocks, right_one), _lead(second, second_blocks, right_two))
    if _moved(left_leads, right_leads) or _refers_back(second, left_two):
        return True
    return _predicate_moved(first_blocks, one_pair, second, two_pair) or _predicate_moved(
        second_blocks, two_pair, first, one_pair
    )


def _moved(left: tuple[str | None, str | None], right: tuple[str | None, str | None]) -> bool:
    """A modifier phrase was rewritten ("a list in Python", "a Python list"): the words'
    prepositions changed, none is a directed one, and they did not merely trade their
    prepositions ("the son of my aunt", "the aunt of my son")."""
    if left[0] == left[1] and right[0] == right[1]:
        return False
    if any(lead in _DIRECTED for lead in left + right):
        return False
    return (left[0], right[0]) != (right[1], left[1])


def _predicate_moved(
    blocks: dict[int, list[Word]], pair: tuple[Word, Word], other: QuestionAnalysis, other_pair
) -> bool:
    """ "The largest planet in the solar system" and "which planet in our solar system is the
    biggest": a modifier of one question's phrase is, in the other, the predicate after a
    form of "be" standing between the two words."""
    low, high = sorted(other_pair, key=lambda word: word.position)
    if not any(
        w.text in _BE_FORMS for w in other.words if low.position < w.position < high.position
    ):
        return False
    moved = pair[list(other_pair).index(high)]
    return len(blocks[moved.position]) > 1


_PRONOUNS = frozenset({"it", "them", "this", "that", "one", "ones"})


def _refers_back(analysis: QuestionAnalysis, later: Word) -> bool:
    """ "My script fails when I run it": the later word's object is a pronoun standing for
    the earlier word, so the earlier word is not a new argument of it."""
    following = [w for w in analysis.words if w.position == later.position + 1]
    return bool(following) and following[0].text in _PRONOUNS


def _blocks(analysis: QuestionAnalysis) -> dict[int, list[Word]]:
    """Each content word's position -> the run of adjacent content words it belongs to."""
    blocks: dict[int, list[Word]] = {}
    run: list[Word] = []
    for word in analysis.content:
        if run and (word.position != run[-1].position + 1 or word.segment != run[-1].segment):
            run = []
        run.append(word)
        blocks[word.position] = run
    return blocks


def _lead(analysis: QuestionAnalysis, blocks: dict[int, list[Word]], word: Word) -> str | None:
    """The preposition that introduces the word's phrase, if any ("in [a] Python list")."""
    start = blocks[word.position][0].position
    before = [w for w in analysis.words if w.position < start and w.segment == word.segment]
    for candidate in reversed(before):
        if candidate.text in _DETERMINERS:
            continue
        return candidate.text if candidate.text in _MODIFIER_PREPOSITIONS | _DIRECTED else None
    return None


# "to" is left out: before a verb it marks an infinitive ("the command to rename a file"),
# and "from A to B" is the direction check's.
_DIRECTED = frozenset({"into", "from", "than", "onto", "toward", "towards", "by"})


def _owner(blocks: dict[int, list[Word]], word: Word) -> bool:
    """Whether the word belongs to an owner: its phrase has a possessive at or after it."""
    return any(w.possessive and w.position >= word.position for w in blocks[word.position])


def _coordinated(analysis: QuestionAnalysis, one: Word, other: Word) -> bool:
    low, high = sorted((one.position, other.position))
    between = {w.text for w in analysis.words if low < w.position < high}
    if between & SYMMETRIC_CONNECTORS:
        return True
    # "the difference between X and Y": the coordinator stands after both pairs of words
    before = {w.text for w in analysis.words if w.position < low and w.segment == one.segment}
    return "between" in before


def _is_passive(analysis: QuestionAnalysis) -> bool:
    """A form of "be" followed closely by a participle: "how is it calculated"."""
    words = analysis.words
    for index, word in enumerate(words):
        if word.text not in _BE_FORMS:
            continue
        for later in words[index + 1 : index + 5]:
            if later.segment != word.segment:
                break
            text = later.text
            participle = (len(text) > 4 and text.endswith(("ed", "en"))) or (
                text in _IRREGULAR_PARTICIPLES
            )
            if participle:
                return True
    return False
