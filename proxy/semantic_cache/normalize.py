"""Text normalisation shared by the exact tier (hash keys) and the semantic tier (embeddings).

Two strengths on purpose:
- `normalize_text` is conservative (Unicode form, case, whitespace, quotes, trailing punctuation):
  two requests whose normalised text is equal are the same request, so the exact tier may hash it.
- `normalize_for_embedding` also repairs misspellings against a general English lexicon (a
  word-frequency list), because a misspelt word is another token to an embedding model and moves
  the vector far; it is never used as a key.

No list here names words of any evaluation set: typos are repaired by edit distance against the
lexicon, not by a table of known misspellings.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "`"})
_WHITESPACE = re.compile(r"\s+")
_TRAILING_PUNCTUATION = re.compile(r"[\s?!.。？！…]+$")
# Words keep inner apostrophes, hyphens, dots and underscores so that "non-fast-forward",
# "array.prototype.map" and "don't" stay one unit; numbers keep thousands separators and decimals.
_TOKEN = re.compile(
    r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?"
    r"|[A-Za-z_][A-Za-z0-9_]*(?:['.\-][A-Za-z0-9_]+)*"
    r"|[^\sA-Za-z0-9]"
)


def normalize_text(text: str) -> str:
    """Case-, whitespace- and punctuation-insensitive form of a message, for exact-tier keys."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    text = _WHITESPACE.sub(" ", text).strip()
    return _TRAILING_PUNCTUATION.sub("", text)


def fingerprint(*, parts: Mapping[str, object]) -> str:
    """sha256 of a canonical JSON rendering: stable across processes and key orderings.

    The integrator passes what decides the answer (model, system prompt, tools, response_format,
    sampling parameters) and, for the exact tier, the normalised messages.
    """
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def exact_cache_key(*, text: str, context_fingerprint: str) -> str:
    """Exact-tier key: the context fingerprint plus the normalised final user text."""
    return fingerprint(parts={"context": context_fingerprint, "text": normalize_text(text)})


@dataclass(frozen=True)
class Token:
    text: str  # lower-cased
    original: str
    start: int

    @property
    def is_word(self) -> bool:
        return self.text[:1].isalpha() or self.text[:1] == "_"

    @property
    def is_number(self) -> bool:
        return self.text[:1].isdigit()


def plain(text: str) -> str:
    """Unicode compatibility form with typographic quotes made plain (offsets are kept)."""
    return unicodedata.normalize("NFKC", text).translate(_QUOTES)


def tokenize(text: str) -> list[Token]:
    text = plain(text)
    return [
        Token(text=match.group().lower(), original=match.group(), start=match.start())
        for match in _TOKEN.finditer(text)
    ]


class Lexicon:
    """Known words ranked by frequency (lower rank = more common), used to repair typos.

    The rank is the frequency prior: "waht" is repaired to "what", not to "wait".
    """

    def __init__(self, *, ranked_words: Mapping[str, int]) -> None:
        self._rank = {word: rank for word, rank in ranked_words.items() if word.isalpha()}

    @classmethod
    def from_counts(cls, counts: Mapping[str, int]) -> Lexicon:
        """From corpus counts: the most frequent word gets rank 0."""
        words = [word for word in counts if word.isalpha() and word.isascii()]
        words.sort(key=lambda word: (-counts[word], word))
        return cls(ranked_words={word: rank for rank, word in enumerate(words)})

    def __contains__(self, word: str) -> bool:
        return word in self._rank

    def rank(self, word: str) -> int | None:
        return self._rank.get(word)

    def correction(self, word: str) -> str | None:
        """The likeliest known word one edit away, or None when the word is known or hopeless."""
        return _cached_correction(self, word)

    def __hash__(self) -> int:
        return id(self)


@lru_cache(maxsize=65536)
def _cached_correction(lexicon: Lexicon, word: str) -> str | None:
    # Short words have too many neighbours one edit away to guess from ("teh": the, ten, tea).
    # Long "words" are pasted identifiers or noise, and their edits grow with the square of the
    # length: never worth a guess.
    if word in lexicon or not 4 <= len(word) <= _LONGEST_REPAIRED_WORD or not word.isalpha():
        return None
    # WordPiece vocabularies omit many inflections ("boils"): a known stem means a real word.
    if any(word.endswith(suffix) and word[: -len(suffix)] in lexicon for suffix in _INFLECTIONS):
        return None
    # Edit kinds in the order typists make them: swapped letters, a dropped letter, a doubled or
    # stray letter, then a wrong letter; within a kind the most frequent word wins.
    for candidates in edits_by_likelihood(word):
        known = [candidate for candidate in candidates if candidate in lexicon]
        if known:
            return min(known, key=lambda candidate: (lexicon.rank(candidate), candidate))
    return None


_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
_LONGEST_REPAIRED_WORD = 20
_INFLECTIONS = ("s", "es", "ed", "d", "ing", "er", "ers", "ly", "est")


def edits_by_likelihood(word: str) -> list[set[str]]:
    """Strings one edit away, grouped: transpositions, insertions, deletions, substitutions."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    transposes = {
        left + right[1] + right[0] + right[2:] for left, right in splits if len(right) > 1
    }
    inserts = {left + char + right for left, right in splits for char in _ALPHABET}
    deletes = {left + right[1:] for left, right in splits if right}
    replaces = {left + char + right[1:] for left, right in splits if right for char in _ALPHABET}
    return [edits - {word} for edits in (transposes, inserts, deletes, replaces)]


def edit_distance(first: str, second: str, *, limit: int = 3) -> int:
    """Optimal-string-alignment distance (Damerau), stopping early once above `limit`."""
    if abs(len(first) - len(second)) > limit:
        return limit + 1
    previous_previous: list[int] | None = None
    previous = list(range(len(second) + 1))
    for i, char_first in enumerate(first, start=1):
        current = [i] + [0] * len(second)
        for j, char_second in enumerate(second, start=1):
            cost = 0 if char_first == char_second else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if (
                previous_previous is not None
                and i > 1
                and j > 1
                and char_first == second[j - 2]
                and first[i - 2] == char_second
            ):
                current[j] = min(current[j], previous_previous[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous_previous, previous = previous, current
    return previous[-1]


def looks_like_identifier(token: Token) -> bool:
    """Code identifiers, acronyms and product names must never be "corrected"."""
    original = token.original
    return (
        any(char.isdigit() or char in "._-" for char in original)
        or (original[:1].islower() and any(char.isupper() for char in original[1:]))
        or (len(original) > 1 and original.isupper())
    )


def repair_spelling(*, text: str, lexicon: Lexicon, protected: frozenset[str] = frozenset()) -> str:
    """Replace unknown words one edit away from a known word by the most frequent such word.

    `protected`: the words of the question this one is compared with. A word that is one of
    them is left as written, and an unknown word an edit or two from one of them becomes
    that word: the other question says what was meant better than word frequencies do
    ("wifi" is not "wife"; "qinoa" is "quinoa", not "quinol").
    """
    mostly_upper = _is_shouting(text)
    pieces: list[str] = []
    cursor = 0
    for token in tokenize(text):
        if not token.is_word or (looks_like_identifier(token) and not mostly_upper):
            continue
        # A capitalised word inside a sentence is likely a name the lexicon does not know.
        is_name = token.original[:1].isupper() and not _sentence_starts_at(text, token.start)
        if is_name and not mostly_upper:
            continue
        if token.text in protected:
            continue
        base = token.text.split("'")[0]
        if base != token.text and (base in protected or base in lexicon):
            continue  # "father's" is "father" owning something, not a typo of "father"
        replacement = None
        if protected:
            near = _nearest(token.text, protected)
            if near is not None:
                if token.text in lexicon:
                    continue  # two real words ("breaks", "brakes"): not a typo to repair
                replacement = near
        if replacement is None:
            replacement = lexicon.correction(token.text)
        if replacement is None:
            continue
        pieces.append(text[cursor : token.start])
        pieces.append(replacement)
        cursor = token.start + len(token.original)
    pieces.append(text[cursor:])
    return "".join(pieces)


def _nearest(word: str, others: frozenset[str]) -> str | None:
    """The word of `others` at most two edits from `word` (one for short words), if any."""
    if len(word) < 4:
        return None
    limit = 1 if len(word) < 8 else 2
    best, best_distance = None, limit + 1
    for other in sorted(others):
        if len(other) < 4 or abs(len(word) - len(other)) > limit:
            continue
        if word != other and (word.endswith(other) or other.endswith(word)):
            continue  # a prefix added ("unfollow", "follow"; "reinstall"), not a typo
        distance = edit_distance(word, other, limit=limit)
        if distance < best_distance:
            best, best_distance = other, distance
    return best


def word_set(text: str) -> frozenset[str]:
    """The lower-cased words of a text, for ``repair_spelling(protected=...)``."""
    return frozenset(token.text for token in tokenize(text) if token.is_word)


def normalize_for_embedding(*, text: str, lexicon: Lexicon | None) -> str:
    """Text as it is embedded for the semantic tier (never used as an exact key)."""
    if lexicon is not None:
        text = repair_spelling(text=text, lexicon=lexicon)
    return normalize_text(text)


def _is_shouting(text: str) -> bool:
    letters = [char for char in text if char.isalpha()]
    return len(letters) >= 8 and sum(char.isupper() for char in letters) > 0.8 * len(letters)


def _sentence_starts_at(text: str, position: int) -> bool:
    before = text[:position].rstrip(" \"'(")
    return not before or before[-1] in ".!?:;\n"
