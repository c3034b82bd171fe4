"""Scope and wording: does one question ask for more, less, or something else?

``check_scope`` rejects on evidence that one question asks for more or less than the other:
a task or item joined on by a coordinator the other lacks ("install and configure", "with a
shopping list"), or a word inserted into a phrase the other keeps whole ("cook brown rice").
``check_wording`` rejects a small edit (a word or two replaced: the replaced word is the
question) and leaves any other difference to the embedder's cosine.
"""

from __future__ import annotations

from proxy.semantic_cache.alignment import Alignment
from proxy.semantic_cache.analysis import QuestionAnalysis, Word

# Words that join one more thing to a request: "install and configure", "the causes and
# effects", "write it and test it", "also explain"; and those that bring in an item after
# them: "a recipe with a shopping list", "including the offside rule".
TASK_COORDINATORS = frozenset({"and", "or", "also", "plus", "then", "&"})
ITEM_INTRODUCERS = frozenset({"with", "including"})


def check_scope(
    first: QuestionAnalysis, second: QuestionAnalysis, alignment: Alignment, *, strict: bool
) -> str | None:
    """One question asks for more, or less, than the other.

    Evidence: words on one side only that sit in a clause joined on by "and", "or", "also",
    "then" the other question lacks (a task or an item added or dropped). With `strict`
    (an embedder whose cosine cannot vouch for a rewording), any word on one side only is
    taken as asking for more.
    """
    for side, extra, mine, theirs in (
        ("stored", alignment.only_first, first, second),
        ("incoming", alignment.only_second, second, first),
    ):
        added = _added_items(mine, theirs, extra)
        if added:
            return f"only the {side} question adds {sorted({w.text for w in added})}"
        inserted = _inserted_into_phrase(
            mine, theirs, extra, alignment, mine_is_second=side == "incoming"
        )
        if inserted:
            return f"the {side} question narrows a phrase with {sorted(inserted)}"
    if strict and bool(alignment.only_first) != bool(alignment.only_second):
        extra = alignment.only_first or alignment.only_second
        side = "stored" if alignment.only_first else "incoming"
        return f"only the {side} question asks about {sorted({w.text for w in extra})}"
    return None


def _added_items(mine: QuestionAnalysis, theirs: QuestionAnalysis, extra: list[Word]) -> list:
    """Words of `extra` joined on by a coordinator `theirs` does not have: the content word
    right before or right after each coordinator beyond their count, or right after an
    item introducer ("with", "including") beyond theirs."""
    if not extra:
        return []
    extra_positions = {word.position for word in extra}
    content = mine.content
    added = []
    coordinators = [word for word in mine.words if word.text in TASK_COORDINATORS]
    # A second question ("Is that normal? How do I fix it?") joins a request like "and".
    joiners = [(word, True) for word in coordinators]
    if len(coordinators) + _questions(mine) <= _tasks(theirs):
        joiners = []
    for introducer in ITEM_INTRODUCERS:
        mine_count = sum(word.text == introducer for word in mine.words)
        if mine_count > sum(word.text == introducer for word in theirs.words):
            joiners += [
                (word, False)
                for index, word in enumerate(mine.words)
                if word.text == introducer and not _compound_preposition(mine.words, index)
            ]
    for joiner, looks_back in joiners:
        before = [w for w in content if w.position < joiner.position][-1:] if looks_back else []
        after = [w for w in content if w.position > joiner.position][:1]
        added += [
            word
            for word in before + after
            if word.segment == joiner.segment and word.position in extra_positions
        ]
    return added


_EDGE = "\x00"


def _inserted_into_phrase(
    mine: QuestionAnalysis,
    theirs: QuestionAnalysis,
    extra: list[Word],
    alignment: Alignment,
    *,
    mine_is_second: bool,
) -> list[str]:
    """Words of `mine` the other lacks, standing between two words that are next to each
    other in the other question: "cook rice" and "cook brown rice", "the population of" and
    "the population density of", "rice" at the end and "rice quickly". Such a word
    qualifies what the other asks about; a rewording ("why do cats purr", "what makes cats
    purr") does not leave the other's phrase whole around it."""
    extra_positions = {word.position for word in extra}
    mine_keys = _word_keys(mine, alignment, is_second=mine_is_second)
    their_keys = _word_keys(theirs, alignment, is_second=not mine_is_second)
    their_pairs = set(zip(their_keys, their_keys[1:], strict=False))
    inserted: list[str] = []
    run: list[int] = []
    for index, (key, word) in enumerate(zip(mine_keys, _with_edges(mine), strict=True)):
        if word is not None and word.position in extra_positions:
            run.append(index)
            continue
        if run:
            left, right = mine_keys[run[0] - 1], key
            # Within a rewording (both questions have words the other lacks) only a word
            # inside the other's phrase counts, not one added at a clause's edge.
            edge_allowed = not (alignment.only_first and alignment.only_second)
            at_edge = _EDGE in (left, right)
            between_words = not (left == _EDGE and right == _EDGE)
            if (left, right) in their_pairs and (edge_allowed or not at_edge) and between_words:
                inserted += [mine_keys[i] for i in run]
            run = []
    return inserted


def _with_edges(analysis: QuestionAnalysis) -> list[Word | None]:
    """The words with None at the start, between clauses and at the end."""
    sequence: list[Word | None] = [None]
    for word in analysis.words:
        if sequence[-1] is not None and word.segment != sequence[-1].segment:
            sequence.append(None)
        sequence.append(word)
    return [*sequence, None]


def _word_keys(analysis: QuestionAnalysis, alignment: Alignment, *, is_second: bool) -> list[str]:
    """Each word under the stem of the word it was paired with (the first question's), and
    clause edges as one marker."""
    partner = alignment.partner if is_second else {}
    return [
        _EDGE
        if word is None
        else (partner[word.position].stem if word.position in partner else word.stem)
        for word in _with_edges(analysis)
    ]


def _compound_preposition(words: list[Word], index: int) -> bool:
    """ "with respect to", "with regard to": a preposition of three words, not an item."""
    following = words[index + 2] if index + 2 < len(words) else None
    return following is not None and following.text in {"to", "of"}


def _questions(analysis: QuestionAnalysis) -> int:
    return max(sum(token.text == "?" for token in analysis.tokens) - 1, 0)


def _tasks(analysis: QuestionAnalysis) -> int:
    return sum(word.text in TASK_COORDINATORS for word in analysis.words) + _questions(analysis)


def check_wording(alignment: Alignment, *, cosine: float, paraphrase_threshold: float):
    """Words the other question lacks: a small edit, or a rewording.

    A small edit to an otherwise identical question is deliberate: the replaced word is what
    the user asks about ("benefits" -> "risks", "Java" -> "Kotlin"), so it is rejected
    whatever the cosine. Anything else (a rewording, words added on one side that no check
    found to change the question) is left to the embedding, with a bar of its own; below the
    bar the pair is *borderline* (a verifier model may still accept it).
    Returns (reason, borderline) or None.
    """
    only_first, only_second = alignment.only_first, alignment.only_second
    if not only_first and not only_second:
        return None
    differing = sorted({word.text for word in only_first + only_second})
    reformed = _replaced_around_a_verb_form(alignment)
    if reformed:
        return f"one verb in two forms with another word replaced: {reformed}", False
    if only_first and only_second:
        changed = max(len(only_first), len(only_second))
        # One word replaced, or two in a question that otherwise stays the same (at least
        # 60% of its words kept): the replaced words are the question.
        swapped_one = changed == 1 and alignment.matched >= 1
        edited_two = changed == 2 and alignment.matched >= 3
        if swapped_one or edited_two:
            return f"a small edit changes the question: {differing}", False
    if cosine < paraphrase_threshold:
        return f"reworded ({differing}) and cosine {cosine:.3f} < {paraphrase_threshold:.2f}", True
    return None


def _replaced_around_a_verb_form(alignment: Alignment) -> list[str]:
    """ "freeze fresh X" and "thaw frozen X": the stored action became the state of the
    object ("frozen") and another verb acts on it. Once the two forms of the verb are set
    side by side, one word on each side is left: a small edit, and that word is the question.
    """
    if not alignment.verb_forms:
        return []
    formed = {id(word) for pair in alignment.verb_forms for word in pair}
    rest_first = [w for w in alignment.only_first if id(w) not in formed]
    rest_second = [w for w in alignment.only_second if id(w) not in formed]
    if len(rest_first) == 1 and len(rest_second) == 1:
        return sorted({rest_first[0].text, rest_second[0].text})
    return []
