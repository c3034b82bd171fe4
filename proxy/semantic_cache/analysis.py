"""What the verification checks need to know about one question, computed once.

Tokens, content words with their positions and clauses, numbers (with their signs and
units), negations, names and identifiers, requested formats, question words, and the
material the user quoted (inline code and quoted text), which must match exactly.

The word lists here are general English (function words, politeness, request framing,
units, output formats), never words picked from an evaluation set.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from proxy.semantic_cache.normalize import Token, looks_like_identifier, plain, tokenize
from proxy.semantic_cache.wordlists import (
    ACKNOWLEDGEMENT_WORDS,
    AMBIGUOUS_LANGUAGES,
    DIRECTION_CONNECTORS,
    DISCOURSE_WORDS,
    FORMAT_NOUNS,
    FORMAT_PREPOSITIONS,
    FORMAT_TERMS,
    FORMAT_VERBS,
    FRAMING_WORDS,
    FUNCTION_WORDS,
    MEASUREMENT_SYSTEMS,
    NEGATION_WORDS,
    NUMBER_WORDS,
    ORDINAL_WORDS,
    SPECIFIC_QUESTION_WORDS,
    SYMMETRIC_CONNECTORS,
    UNIT_ALIASES,
)

_RELATION_SPAN = 5
_SEGMENT_BREAK = re.compile(r"[.!?;:,\n]")
_ROMAN = re.compile(r"^(?=[MDCLXVI]{2,}$)M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
# "What causes X", "what is the reason for X", "how come X": the question "why X" asks.
_WHY_FRAMES = re.compile(
    r"\b(?:(?:what|which)(?:'s|\s+is|\s+are|\s+was|\s+were)\s+the\s+"
    r"(?:main\s+|primary\s+|usual\s+|common\s+|real\s+)?(?:reasons?|causes?)"
    r"(?:\s+(?:for|of|behind|why|that))?"
    r"|what(?:'s|\s+is|\s+are)\s+causing|what\s+(?:causes|caused|leads\s+to|led\s+to)"
    r"|how\s+come)\b",
    re.IGNORECASE,
)
_CODE_SPAN = re.compile(r"`([^`]+)`")
_QUOTED_SPAN = re.compile(r"\"([^\"]+)\"|(?<![A-Za-z0-9])'([^']+)'(?![A-Za-z0-9])")
# Operators outside quoted code still decide the answer ("i++" vs "i--", "b - c" vs "b + c").
_OPERATORS = frozenset("+-*/^=<>~&|")
_SIGNS = frozenset("-+\u2212")


def stem(word: str) -> str:
    """A light suffix stripper: enough to match plurals, possessives and verb forms."""
    if "'" in word:
        word = word.split("'")[0]
    for suffix, replacement, min_stem in (
        ("ies", "y", 3),
        ("sses", "ss", 2),
        ("ing", "", 4),
        ("ed", "", 4),
        ("es", "", 4),
        ("s", "", 3),
        ("ly", "", 4),
        ("ence", "", 4),
        ("ance", "", 4),
        ("ment", "", 4),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= min_stem:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                continue
            return word[: -len(suffix)] + replacement
    return word


@dataclass(frozen=True)
class Word:
    """A word of the question, with where it stands."""

    text: str
    stem: str
    position: int
    original: str
    segment: int
    # "Canada's capital": the owner stands after what it owns, as in "the capital of Canada".
    possessive: bool = False

    @property
    def is_acronym(self) -> bool:
        letters = self.original.split("'")[0]
        return 2 <= len(letters) <= 6 and letters.isalpha() and letters.isupper()


def _roman_value(text: str) -> int:
    total = 0
    for current, following in zip(text, text[1:] + " ", strict=True):
        value = _ROMAN_VALUES[current]
        total += -value if following != " " and _ROMAN_VALUES[following] > value else value
    return total


def _parse_number(text: str) -> float | None:
    cleaned = re.sub(r"(st|nd|rd|th)$", "", text).replace(",", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


@dataclass
class QuestionAnalysis:
    """Everything the checks need about one question, computed once."""

    text: str
    tokens: list[Token] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    negations: int = 0
    numbers: list[tuple[float, str | None]] = field(default_factory=list)
    systems: Counter = field(default_factory=Counter)
    entities: list[Word] = field(default_factory=list)
    formats: set[str] = field(default_factory=set)
    question_words: set[str] = field(default_factory=set)
    # Quoted material must reappear unchanged: inline code to the character (spaces aside),
    # quoted text to the word. Each side's whole text is kept in the same two forms.
    code: list[str] = field(default_factory=list)
    quoted: list[str] = field(default_factory=list)
    code_text: str = ""
    compact: str = ""
    operators: list[str] = field(default_factory=list)
    # Ordinal words before a name ("the Second World War"), to compare with regnal numerals.
    ordinals: list[float] = field(default_factory=list)
    number_tokens: list[int] = field(default_factory=list)
    # position of each such ordinal word -> its value
    ordinal_positions: dict[int, float] = field(default_factory=dict)

    @cached_property
    def numbers_coordinated(self) -> bool:
        """Every number joined to the next by "and", "or", "vs" or a comma, and by no directed
        word: their order does not matter ("Python 2 and Python 3", "4, 8 and 15")."""
        if len(self.number_tokens) < 2:
            return False
        for left, right in zip(self.number_tokens, self.number_tokens[1:], strict=False):
            between = {token.text for token in self.tokens[left + 1 : right]}
            if between & DIRECTION_CONNECTORS or not between & (SYMMETRIC_CONNECTORS | {","}):
                return False
        return True

    @cached_property
    def content(self) -> list[Word]:
        return [
            word
            for word in self.words
            if word.text not in FUNCTION_WORDS
            and word.text not in DISCOURSE_WORDS
            and word.text not in NEGATION_WORDS
            and word.text not in NUMBER_WORDS
            and word.text[:1].isalpha()
        ]

    @cached_property
    def substantive(self) -> list[Word]:
        """Content words that are not request framing: what the question is about."""
        return [word for word in self.content if word.text not in FRAMING_WORDS]

    @cached_property
    def content_stems(self) -> set[str]:
        return {word.stem for word in self.content}


def compact(text: str) -> str:
    """Casefold; drop spaces, hyphens and quote marks ("non-fast-forward" = "non fast forward")."""
    return re.sub(r"[\s\-`'\"]+", "", text.casefold())


def compact_code(text: str) -> str:
    """Casefold and drop spaces and backticks only: in code a hyphen is a minus."""
    return re.sub(r"[\s`]+", "", text.casefold())


def _code_spans(text: str) -> list[str]:
    return [key for key in map(compact_code, _CODE_SPAN.findall(text)) if key]


def _quoted_spans(text: str) -> list[str]:
    without_code = _CODE_SPAN.sub(" ", text)
    spans = [a or b for a, b in _QUOTED_SPAN.findall(without_code)]
    return [key for key in map(compact, spans) if key]


def _signed(tokens: list[Token], index: int) -> bool:
    """A "-" or "+" written against the number, where no operand stands before it."""
    if index == 0 or tokens[index - 1].text not in _SIGNS:
        return False
    sign = tokens[index - 1]
    if sign.start + len(sign.original) != tokens[index].start:
        return False
    before = tokens[index - 2] if index >= 2 else None
    return before is None or not (before.is_word or before.is_number or before.text in ")]")


def _operators(tokens: list[Token]) -> list[str]:
    found = []
    for index, token in enumerate(tokens):
        if token.text not in _OPERATORS:
            continue
        if token.text == "-":
            # A dash between spaces is punctuation ("quick question - how do I"), not minus.
            after = tokens[index + 1].start if index + 1 < len(tokens) else None
            spaced_before = (
                index == 0
                or tokens[index - 1].start + len(tokens[index - 1].original) < token.start
            )
            spaced_after = after is None or after > token.start + 1
            if spaced_before and spaced_after:
                continue
        found.append(token.text)
    return found


def is_trivial(text: str) -> bool:
    """A greeting, thanks, a one-word turn or nothing: only an exact repeat may be served."""
    words = [token.text.split("'")[0] for token in tokenize(text) if token.is_word]
    if len(words) + sum(token.is_number for token in tokenize(text)) <= 1:
        return True
    substantive = [
        word
        for word in words
        if word not in FUNCTION_WORDS
        and word not in DISCOURSE_WORDS
        and word not in ACKNOWLEDGEMENT_WORDS
    ]
    return not substantive


def analyse(text: str) -> QuestionAnalysis:
    text = _WHY_FRAMES.sub("why", plain(text))
    analysis = QuestionAnalysis(text=text)
    analysis.code = _code_spans(text)
    analysis.quoted = _quoted_spans(text)
    analysis.code_text = compact_code(text)
    analysis.compact = compact(text)
    tokens = tokenize(text)
    analysis.tokens = tokens
    analysis.operators = _operators(tokens)
    letters = [char for char in text if char.isalpha()]
    shouting = len(letters) >= 8 and sum(c.isupper() for c in letters) > 0.8 * len(letters)

    segment = 0
    position = 0
    previous_text = ""
    for index, token in enumerate(tokens):
        if not token.is_word and not token.is_number:
            if _SEGMENT_BREAK.match(token.text) and not _inside_number(tokens, index):
                segment += 1
            unit = UNIT_ALIASES.get(token.text)
            if unit in {"usd", "eur", "gbp", "jpy"}:
                analysis.systems[unit] += 1
            previous_text = token.text
            continue
        if token.is_number:
            value = _parse_number(token.text)
            if value is not None:
                if _signed(tokens, index) and tokens[index - 1].text != "+":
                    value = -value
                analysis.numbers.append((value, _unit_near(tokens, index)))
                analysis.number_tokens.append(index)
            position += 1
            previous_text = token.text
            continue
        # Regnal and ordinal numerals follow a name ("World War II", "Henry VIII"); elsewhere
        # "CD" or "MIX" are words, not 400 and 1009.
        follows_name = index > 0 and tokens[index - 1].original[:1].isupper()
        if (
            (_ROMAN.match(token.original) or _is_lone_numeral(tokens, index))
            and follows_name
            and not shouting
        ):
            analysis.numbers.append((float(_roman_value(token.original)), None))
            analysis.number_tokens.append(index)
            position += 1
            continue
        if token.text.endswith("n't"):
            analysis.negations += 1
        # "sugar-free", "chemical-free": without sugar, without chemicals.
        if token.text.endswith("-free") and len(token.text) > 5:
            analysis.negations += 1
        ordinal = ORDINAL_WORDS.get(token.text)
        if ordinal is not None and _next_is_name(tokens, index):
            # Kept apart: "the Second World War" is "World War II", but "the First President"
            # is "the first president" (``checks.check_numbers``).
            analysis.ordinals.append(float(ordinal))
            analysis.ordinal_positions[position] = float(ordinal)
        # Hyphenated words are compared part by part: "non-fast-forward" == "non fast forward".
        base = token.text[:-3] if token.text.endswith("n't") else token.text.split("'")[0]
        for part in base.split("-") if "-" in base else [base]:
            if not part:
                continue
            # An acronym is not an inflected word: "HTTPS" is not the plural of "HTTP".
            acronym = len(part) > 1 and token.original.split("'")[0].isupper()
            word_stem = part if acronym else stem(part)
            previous = analysis.words[-1] if analysis.words else None
            if previous and previous.text == "non" and previous.position == position - 1:
                # "non-www" is not "www": the negated word is kept apart from the plain one, so
                # "www to non-www" and "non-www to www" do not pair as the same words.
                word_stem = "non" + word_stem
            word = Word(
                text=part,
                stem=word_stem,
                position=position,
                original=token.original,
                segment=segment,
                possessive=token.text.endswith(("'s", "s'")),
            )
            analysis.words.append(word)
            position += 1
            if part in NEGATION_WORDS:
                analysis.negations += 1
            if part in NUMBER_WORDS:
                unit = _unit_near(tokens, index)
                # "one" is a pronoun far more often than a count ("quick one for you").
                if part != "one" or unit is not None:
                    analysis.numbers.append((float(NUMBER_WORDS[part]), unit))
                    analysis.number_tokens.append(index)
            unit = UNIT_ALIASES.get(stem(part)) or UNIT_ALIASES.get(part)
            if unit in MEASUREMENT_SYSTEMS and part not in {"c", "f"}:
                analysis.systems[unit] += 1
            format_term = FORMAT_TERMS.get(part) or FORMAT_TERMS.get(stem(part))
            if format_term and _requests_format(tokens, index, part, previous_text):
                analysis.formats.add(format_term)
            if part in SPECIFIC_QUESTION_WORDS:
                analysis.question_words.add(part)
        if not shouting and ordinal is None and _is_entity(text, token):
            analysis.entities.append(analysis.words[-1])
        previous_text = token.text
    return analysis


def _requests_format(tokens: list[Token], index: int, part: str, previous_text: str) -> bool:
    """Whether a format word asks for a format here ("in one sentence", "as a numbered
    list", "write a formal letter") rather than naming a thing ("how do I list files", "the
    steps to", "the word 'x'", "table salt", "a Python list")."""
    if part in AMBIGUOUS_LANGUAGES:
        return previous_text in {"in", "using", "with"}
    if part not in FORMAT_NOUNS and stem(part) not in FORMAT_NOUNS:
        return True
    if index > 0 and (tokens[index - 1].is_number or tokens[index - 1].text in NUMBER_WORDS):
        return True
    for distance in (1, 2, 3):
        marker = tokens[index - distance].text if index >= distance else None
        between = [token.text for token in tokens[index - distance + 1 : index]]
        if marker in FORMAT_VERBS:
            return True
        if marker in FORMAT_PREPOSITIONS:
            return all(_describes_shape(text) for text in between)
    return False


def _describes_shape(text: str) -> bool:
    if text in {"a", "an", "the", "one", "single", "few", "couple"} or text in NUMBER_WORDS:
        return True
    term = FORMAT_TERMS.get(text) or FORMAT_TERMS.get(stem(text)) or ""
    return term.startswith(("length:", "shape:"))


def _next_is_name(tokens: list[Token], index: int) -> bool:
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    return following is not None and following.is_word and following.original[:1].isupper()


def _is_lone_numeral(tokens: list[Token], index: int) -> bool:
    """ "World War I", "Henry V": one letter after a name; "I" needs a two-word name before it,
    so the pronoun after one capitalised word ("Yesterday I went") stays a pronoun."""
    letter = tokens[index].original
    if letter not in {"I", "V", "X"}:
        return False
    names = 2 if letter == "I" else 1
    before = tokens[max(index - names, 0) : index]
    return len(before) == names and all(
        token.is_word and token.original[:1].isupper() for token in before
    )


def _inside_number(tokens: list[Token], index: int) -> bool:
    return (
        0 < index < len(tokens) - 1 and tokens[index - 1].is_number and tokens[index + 1].is_number
    )


def _unit_near(tokens: list[Token], index: int) -> str | None:
    if index > 0 and tokens[index - 1].text in {"$", "€", "£", "¥"}:
        return UNIT_ALIASES[tokens[index - 1].text]
    following = index + 1
    while following < len(tokens) and tokens[following].text in {"-", "°", "degree", "degrees"}:
        following += 1
    if following < len(tokens):
        candidate = tokens[following].text
        return UNIT_ALIASES.get(candidate) or UNIT_ALIASES.get(stem(candidate))
    return None


def _is_entity(text: str, token: Token) -> bool:
    original = token.original
    base = original.lower().split("'")[0]
    if not original[:1].isalpha() or base in FUNCTION_WORDS:
        return False
    if looks_like_identifier(token):
        return True
    if not original[:1].isupper():
        return False
    before = text[: token.start].rstrip(" \"'(`")
    at_sentence_start = not before or before[-1] in ".!?:;\n"
    return not at_sentence_start
