"""Verification beyond cosine: is the incoming question the same question as the stored one?

Cosine similarity says two questions are about the same thing; it does not say they have the same
answer. "Convert 100 US dollars to euros" and "Convert 100 euros to US dollars" score 0.99. Each
check below looks at one thing that decides an answer and rejects the candidate when the two
questions disagree on it. Checks run in a fixed order and the first that rejects is named in the
verdict, so metrics and the evaluation can attribute every rejection; each can be switched off.

The word lists here are general English (function words, politeness, units, output formats),
never words picked from an evaluation set.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

from proxy.semantic_cache.normalize import (
    Lexicon,
    Token,
    edit_distance,
    looks_like_identifier,
    repair_spelling,
    tokenize,
)

CHECK_NUMBERS = "numbers"
CHECK_NEGATION = "negation"
CHECK_DIRECTION = "direction"
CHECK_ENTITIES = "entities"
CHECK_FORMAT = "format"
CHECK_QUESTION_TYPE = "question_type"
CHECK_WORDING = "wording"

# Cheap, precise checks first; `wording` (which also holds the paraphrase bar) last.
ALL_CHECKS: tuple[str, ...] = (
    CHECK_NUMBERS,
    CHECK_NEGATION,
    CHECK_DIRECTION,
    CHECK_ENTITIES,
    CHECK_FORMAT,
    CHECK_QUESTION_TYPE,
    CHECK_WORDING,
)

# When the wording differs beyond typos and small talk, the embedding alone must vouch for the
# meaning, so a reworded candidate needs this cosine (measured on normalised text).
DEFAULT_PARAPHRASE_THRESHOLD = 0.90
# A question that differs by ONE added word ("best cheap laptop") barely moves a mean-pooled
# embedding (0.92 for that pair), so that case needs more than a full rewording does. This is the
# seed's CACHE_SIMILARITY_THRESHOLD default.
DEFAULT_ADDED_WORD_THRESHOLD = 0.95
# Past this many words a question is a document: the embedding has been truncated at 256 tokens
# and the checks were not designed for it, so only the exact tier may serve it.
MAX_VERIFIED_WORDS = 400
REJECTED_TOO_LONG = "too_long"


@dataclass(frozen=True)
class VerificationPolicy:
    enabled_checks: frozenset[str] = frozenset(ALL_CHECKS)
    paraphrase_threshold: float = DEFAULT_PARAPHRASE_THRESHOLD
    added_word_threshold: float = DEFAULT_ADDED_WORD_THRESHOLD

    def without(self, *checks: str) -> VerificationPolicy:
        return replace(self, enabled_checks=self.enabled_checks - frozenset(checks))

    def only(self, *checks: str) -> VerificationPolicy:
        return replace(self, enabled_checks=frozenset(checks))


DEFAULT_POLICY = VerificationPolicy()


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    rejected_by: str | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.accepted


# --- general English word lists -------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_WORDS = _words(
    """
    a an the is are was were be been being am do does did doing done have has had having
    i me my mine myself we us our ours you your yours he him his she her it its they them their
    this that these those there here what which who whom whose when where why how
    of in on at by for with about as into to from than then and or but if so such between
    can could would should will shall may might must ca wo ai any some all each also too very
    many much
    get gets got getting go goes going s t d ll re ve m
    """
)
# Politeness, hedging and request framing: they change how a question is asked, not its answer.
DISCOURSE_WORDS = _words(
    """
    hi hello hey greetings thanks thank thx please kindly sorry bother quick question questions
    curious wondering wonder wondered help helping appreciated appreciate advance hope hoping okay
    ok exactly actually basically honestly dumb silly stupid stuck explain tell know let lot lots
    much cheers tips advice assist assistance anyone someone somebody just really maybe perhaps
    """
)
NEGATION_WORDS = _words("not no never none nobody nothing nowhere neither nor cannot without non")
NEGATIVE_PREFIXES = ("non", "dis", "un", "in", "im", "il", "ir")
# Words that make the order of their neighbours meaningful ("A to B", "B into A").
DIRECTION_CONNECTORS = _words(
    "to into from than onto toward towards versus vs over under after before"
)
SPECIFIC_QUESTION_WORDS = _words("when why where who whom whose")
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1_000_000, "billion": 1_000_000_000, "dozen": 12, "half": 0.5,
}  # fmt: skip
UNIT_ALIASES = {
    "km": "km", "kilometer": "km", "kilometre": "km", "mile": "mile", "mi": "mile",
    "meter": "m", "metre": "m", "m": "m", "cm": "cm", "mm": "mm", "foot": "ft", "feet": "ft",
    "ft": "ft", "inch": "in", "kg": "kg", "kilogram": "kg", "g": "g", "gram": "g", "lb": "lb",
    "lbs": "lb", "pound": "lb", "oz": "oz", "ounce": "oz", "mg": "mg", "milligram": "mg",
    "ml": "ml", "milliliter": "ml", "millilitre": "ml", "l": "l", "liter": "l", "litre": "l",
    "gallon": "gallon", "cup": "cup", "tablespoon": "tbsp", "tbsp": "tbsp", "teaspoon": "tsp",
    "tsp": "tsp", "f": "fahrenheit", "fahrenheit": "fahrenheit", "c": "celsius",
    "celsius": "celsius", "kelvin": "kelvin", "%": "percent", "percent": "percent",
    "$": "usd", "usd": "usd", "dollar": "usd", "€": "eur", "eur": "eur", "euro": "eur",
    "£": "gbp", "gbp": "gbp", "¥": "jpy", "yen": "jpy", "second": "s", "sec": "s",
    "minute": "min", "min": "min", "hour": "h", "hr": "h", "day": "day", "week": "week",
    "month": "month", "year": "year", "gb": "gb", "mb": "mb", "kb": "kb", "tb": "tb",
    "ghz": "ghz", "mhz": "mhz", "mph": "mph", "kph": "kph", "calorie": "kcal", "kcal": "kcal",
    "bit": "bit", "byte": "byte", "x": "times",
}  # fmt: skip
# Scales and currencies change the answer wherever they appear, not only next to a number.
MEASUREMENT_SYSTEMS = _words("fahrenheit celsius kelvin usd eur gbp jpy")
FORMAT_TERMS = {
    # length and depth
    "short": "length:short", "brief": "length:short", "briefly": "length:short",
    "concise": "length:short", "concisely": "length:short", "tldr": "length:short",
    "detailed": "length:long", "detail": "length:long", "thorough": "length:long",
    "comprehensive": "length:long", "depth": "length:long", "elaborate": "length:long",
    "sentence": "shape:sentence", "paragraph": "shape:paragraph", "word": "shape:words",
    # shape
    "list": "shape:list", "bullet": "shape:bullets", "numbered": "shape:numbered",
    "table": "shape:table", "json": "shape:json", "yaml": "shape:yaml", "xml": "shape:xml",
    "markdown": "shape:markdown", "html": "shape:html", "outline": "shape:outline",
    "diagram": "shape:diagram", "chart": "shape:chart", "code": "shape:code",
    "step": "shape:steps", "summary": "shape:summary", "summarize": "shape:summary",
    "summarise": "shape:summary",
    # genre
    "tweet": "genre:tweet", "email": "genre:email", "essay": "genre:essay", "poem": "genre:poem",
    "haiku": "genre:haiku", "letter": "genre:letter", "blog": "genre:blog",
    "article": "genre:article", "story": "genre:story", "song": "genre:song",
    "memo": "genre:memo", "slogan": "genre:slogan", "headline": "genre:headline",
    "recipe": "genre:recipe", "itinerary": "genre:itinerary", "test": "genre:tests",
    "pytest": "genre:tests", "unittest": "genre:tests",
    # programming languages
    "python": "lang:python", "javascript": "lang:javascript", "js": "lang:javascript",
    "typescript": "lang:typescript", "ts": "lang:typescript", "java": "lang:java",
    "go": "lang:go", "golang": "lang:go", "rust": "lang:rust", "ruby": "lang:ruby",
    "php": "lang:php", "c": "lang:c", "c++": "lang:cpp", "cpp": "lang:cpp", "c#": "lang:csharp",
    "csharp": "lang:csharp", "kotlin": "lang:kotlin", "swift": "lang:swift", "sql": "lang:sql",
    "bash": "lang:bash", "shell": "lang:bash", "powershell": "lang:powershell", "r": "lang:r",
    "scala": "lang:scala", "haskell": "lang:haskell", "perl": "lang:perl", "lua": "lang:lua",
    "dart": "lang:dart", "matlab": "lang:matlab", "elixir": "lang:elixir",
    # natural languages of the answer
    "english": "human:english", "spanish": "human:spanish", "french": "human:french",
    "german": "human:german", "italian": "human:italian", "portuguese": "human:portuguese",
    "chinese": "human:chinese", "japanese": "human:japanese", "korean": "human:korean",
    "russian": "human:russian", "arabic": "human:arabic", "hindi": "human:hindi",
    "dutch": "human:dutch",
    # audience
    "beginner": "audience:beginner", "novice": "audience:beginner", "expert": "audience:expert",
    "child": "audience:child", "kid": "audience:child", "eli5": "audience:child",
    "layman": "audience:beginner", "technical": "audience:expert",
    "advanced": "audience:expert",
}  # fmt: skip
# "go" and "c" are verbs/letters more often than languages: only count them after "in"/"using".
_AMBIGUOUS_LANGUAGES = frozenset({"go", "c", "r", "swift", "rust", "shell", "ts", "js"})
_RELATION_SPAN = 5
_SEGMENT_BREAK = re.compile(r"[.!?;:,\n]")
_ROMAN = re.compile(r"^(?=[MDCLXVI]{2,}$)M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})$")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


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
    def content_stems(self) -> set[str]:
        return {word.stem for word in self.content}


def analyse(text: str) -> QuestionAnalysis:
    analysis = QuestionAnalysis(text=text)
    tokens = tokenize(text)
    analysis.tokens = tokens
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
                analysis.numbers.append((value, _unit_near(tokens, index)))
            position += 1
            previous_text = token.text
            continue
        # Regnal and ordinal numerals follow a name ("World War II", "Henry VIII"); elsewhere
        # "CD" or "MIX" are words, not 400 and 1009.
        follows_name = index > 0 and tokens[index - 1].original[:1].isupper()
        if _ROMAN.match(token.original) and follows_name and not shouting:
            analysis.numbers.append((float(_roman_value(token.original)), None))
            position += 1
            continue
        if token.text.endswith("n't"):
            analysis.negations += 1
        # Hyphenated words are compared part by part: "non-fast-forward" == "non fast forward".
        base = token.text[:-3] if token.text.endswith("n't") else token.text.split("'")[0]
        for part in base.split("-") if "-" in base else [base]:
            if not part:
                continue
            word = Word(
                text=part,
                stem=stem(part),
                position=position,
                original=token.original,
                segment=segment,
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
            unit = UNIT_ALIASES.get(stem(part)) or UNIT_ALIASES.get(part)
            if unit in MEASUREMENT_SYSTEMS and part not in {"c", "f"}:
                analysis.systems[unit] += 1
            format_term = FORMAT_TERMS.get(part) or FORMAT_TERMS.get(stem(part))
            if format_term and (
                part not in _AMBIGUOUS_LANGUAGES or previous_text in {"in", "using", "with"}
            ):
                analysis.formats.add(format_term)
            if part in SPECIFIC_QUESTION_WORDS:
                analysis.question_words.add(part)
        if not shouting and _is_entity(text, token):
            analysis.entities.append(analysis.words[-1])
        previous_text = token.text
    return analysis


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


# --- matching words across the two questions ------------------------------------------------


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


def _align(
    first: list[Word], second: list[Word], *, lexicon: Lexicon | None
) -> tuple[list[Word], list[Word], int]:
    """Greedy one-to-one alignment; returns unmatched words of each side and the matched count.

    Equal stems are paired first through a dictionary; only the few words left over are compared
    by edit distance, so long texts do not cost a quadratic number of distance computations.
    """
    by_stem: dict[str, list[Word]] = {}
    for word in second:
        by_stem.setdefault(word.stem, []).append(word)
    matched = 0
    leftover_first: list[Word] = []
    for word in first:
        partners = by_stem.get(word.stem)
        if partners:
            partners.pop()
            matched += 1
        else:
            leftover_first.append(word)
    unmatched_second = [word for words in by_stem.values() for word in words]
    unmatched_second.sort(key=lambda word: word.position)
    unmatched_first: list[Word] = []
    for word in leftover_first:
        partner = next(
            (other for other in unmatched_second if words_match(word, other, lexicon=lexicon)),
            None,
        )
        if partner is None:
            unmatched_first.append(word)
        else:
            unmatched_second.remove(partner)
            matched += 1
    only_first, only_second = _without_compounds(unmatched_first, unmatched_second)
    return only_first, only_second, matched


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


# --- the checks -------------------------------------------------------------------------------


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
    return None


def check_negation(
    first: QuestionAnalysis, second: QuestionAnalysis, *, lexicon: Lexicon | None
) -> str | None:
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
    return None


def check_direction(first: QuestionAnalysis, second: QuestionAnalysis) -> str | None:
    """Two shared words related in both questions ("A to B", "A a B") whose order flips."""
    first_anchors = _anchors(first)
    second_anchors = _anchors(second)
    shared = sorted(
        (key for key in first_anchors if key in second_anchors),
        key=lambda key: first_anchors[key].position,
    )
    for index, left in enumerate(shared):
        for right in shared[index + 1 :]:
            first_pair = (first_anchors[left], first_anchors[right])
            # Related words stand at most _RELATION_SPAN apart: later ones cannot be related.
            if first_pair[1].position - first_pair[0].position > _RELATION_SPAN:
                break
            second_pair = (second_anchors[left], second_anchors[right])
            if second_pair[0].position < second_pair[1].position:
                continue
            if _related(first, *first_pair) and _related(second, *second_pair):
                return f"order of {left[0]!r} and {right[0]!r} is reversed"
    return None


def _related(analysis: QuestionAnalysis, first: Word, second: Word) -> bool:
    """Within one clause, and either adjacent (up to one word between) or joined by a connector."""
    if first.segment != second.segment:
        return False
    low, high = sorted((first.position, second.position))
    if high - low <= 2:
        return True
    if high - low > _RELATION_SPAN:
        return False
    return any(
        low < word.position < high and word.text in DIRECTION_CONNECTORS for word in analysis.words
    )


def _anchors(analysis: QuestionAnalysis) -> dict[tuple[str, int], Word]:
    seen: Counter = Counter()
    anchors: dict[tuple[str, int], Word] = {}
    for word in analysis.content:
        anchors[(word.stem, seen[word.stem])] = word
        seen[word.stem] += 1
    return anchors


def check_entities(
    first: QuestionAnalysis, second: QuestionAnalysis, *, lexicon: Lexicon | None
) -> str | None:
    """Every name, acronym or identifier of one question must appear in the other."""
    for source, target in ((first, second), (second, first)):
        for entity in source.entities:
            if not any(words_match(entity, word, lexicon=lexicon) for word in target.words):
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
    if any(FORMAT_TERMS.get(word.text) or FORMAT_TERMS.get(word.stem) for word in words):
        return False
    has_discourse = any(word.text in DISCOURSE_WORDS for word in words)
    return (has_discourse or not content) and len(content) <= 3


def check_wording(
    first: QuestionAnalysis,
    second: QuestionAnalysis,
    *,
    cosine: float,
    paraphrase_threshold: float,
    added_word_threshold: float,
    lexicon: Lexicon | None,
) -> str | None:
    """Same words (modulo typos, inflection, small talk), or a paraphrase the embedding vouches for.

    A small edit to an otherwise identical question is deliberate: the edited word is what the
    user asks about ("benefits" -> "risks", "GDP growth rate" -> "GDP"). So a near-identical pair
    with a changed content word is rejected whatever its cosine, while a thoroughly reworded pair
    is left to the embedding, with a stricter cosine.
    """
    first_core = core_content(first, second)
    second_core = core_content(second, first)
    only_first, only_second, matched = _align(first_core, second_core, lexicon=lexicon)
    if not only_first and not only_second:
        return None
    changed = max(len(only_first), len(only_second))
    differing = sorted({word.text for word in only_first + only_second})
    # One extra word with nothing taken away is how people pad a question ("the way compound
    # interest works", "the purpose of the hook"). One word swapped for another, or two changed
    # in an otherwise long identical question, is an edit: the edited words are the question.
    padded = (not only_first or not only_second) and changed == 1
    swapped_one = changed == 1 and not padded and matched >= 1
    edited_two = changed == 2 and matched >= 4
    if swapped_one or edited_two:
        return f"a small edit changes the question: {differing}"
    if padded and cosine < added_word_threshold:
        return f"one word added ({differing}) and cosine {cosine:.3f} < {added_word_threshold:.2f}"
    if cosine < paraphrase_threshold:
        return f"reworded ({differing}) and cosine {cosine:.3f} < {paraphrase_threshold:.2f}"
    return None


@lru_cache(maxsize=8192)
def _prepared(text: str, lexicon: Lexicon | None) -> QuestionAnalysis:
    # Stored questions are verified again and again: analyse each text once. The analysis is
    # never mutated after this point, so sharing it between threads is safe.
    if lexicon is not None:
        text = repair_spelling(text=text, lexicon=lexicon)
    analysis = analyse(text)
    _ = analysis.content_stems  # fill the cached properties before the object is shared
    return analysis


def verify(
    *,
    stored: str,
    incoming: str,
    cosine: float,
    policy: VerificationPolicy = DEFAULT_POLICY,
    lexicon: Lexicon | None = None,
) -> Verdict:
    """Decide whether `incoming` may be answered with the answer cached for `stored`.

    `cosine` is the similarity of their embeddings; the caller has already found the candidate
    above its search threshold. `lexicon` (from `LocalMiniLMEmbedder().lexicon()`) tells typos
    from real words; without it any two close spellings count as the same word.
    """
    if max(len(stored.split()), len(incoming.split())) > MAX_VERIFIED_WORDS:
        return Verdict(
            accepted=False,
            rejected_by=REJECTED_TOO_LONG,
            reason=f"more than {MAX_VERIFIED_WORDS} words: exact tier only",
        )
    first = _prepared(stored, lexicon)
    second = _prepared(incoming, lexicon)
    enabled = policy.enabled_checks
    checks = (
        (CHECK_NUMBERS, lambda: check_numbers(first, second)),
        (CHECK_NEGATION, lambda: check_negation(first, second, lexicon=lexicon)),
        (CHECK_DIRECTION, lambda: check_direction(first, second)),
        (CHECK_ENTITIES, lambda: check_entities(first, second, lexicon=lexicon)),
        (CHECK_FORMAT, lambda: check_format(first, second)),
        (CHECK_QUESTION_TYPE, lambda: check_question_type(first, second)),
        (
            CHECK_WORDING,
            lambda: check_wording(
                first,
                second,
                cosine=cosine,
                paraphrase_threshold=policy.paraphrase_threshold,
                added_word_threshold=policy.added_word_threshold,
                lexicon=lexicon,
            ),
        ),
    )
    for name, run in checks:
        if name not in enabled:
            continue
        reason = run()
        if reason is not None:
            return Verdict(accepted=False, rejected_by=name, reason=reason)
    return Verdict(accepted=True)


@dataclass(frozen=True)
class VerifiedMatch:
    entry_id: str
    score: float
    text: str
    meta: object


def first_verified_candidate(
    *,
    candidates: list,
    incoming: str,
    policy: VerificationPolicy = DEFAULT_POLICY,
    lexicon: Lexicon | None = None,
) -> tuple[VerifiedMatch | None, list[Verdict]]:
    """Walk index candidates best-first and return the first one verification accepts.

    `candidates` are `index.Candidate`s (anything with entry_id, score, text, meta). The verdicts
    of rejected candidates are returned too, for metrics ("rejected by numbers", ...).
    """
    rejections: list[Verdict] = []
    for candidate in candidates:
        verdict = verify(
            stored=candidate.text,
            incoming=incoming,
            cosine=candidate.score,
            policy=policy,
            lexicon=lexicon,
        )
        if verdict.accepted:
            match = VerifiedMatch(
                entry_id=candidate.entry_id,
                score=candidate.score,
                text=candidate.text,
                meta=candidate.meta,
            )
            return match, rejections
        rejections.append(verdict)
    return None, rejections
