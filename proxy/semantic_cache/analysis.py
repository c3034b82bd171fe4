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
    whats hows wheres whos whens thats theres im ive youre
    during within through throughout across around via while until since among upon
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
# How a request is framed rather than what it asks: "what's the best way to", "the purpose
# of", "explain", "tell me", copulas such as "look" and "seem". Set aside when the two
# questions' wordings are compared; they never carry a name, a number or a polarity.
FRAMING_WORDS = _words(
    """
    way ways method methods approach procedure process command commands technique
    best good proper correct recommended easiest simplest
    purpose function role meaning mean means definition define explain explanation describe
    refer refers
    description tell show give find figure thing things stuff something look looks appear
    appears seem seems want wanted able possible
    """
)
# Turns that say nothing to answer from a neighbour's answer: greetings, thanks, agreement.
ACKNOWLEDGEMENT_WORDS = _words(
    """
    yes yeah yep no nope sure fine great cool nice awesome perfect good morning afternoon
    evening night bye goodbye welcome lol haha wow hmm right alright done got understood
    """
)
NEGATION_WORDS = _words(
    """
    not no never none nobody nothing nowhere neither nor cannot without non
    dont doesnt didnt cant wont isnt arent wasnt werent shouldnt wouldnt couldnt havent hasnt
    hadnt
    """
)
NEGATIVE_PREFIXES = ("non", "dis", "un", "in", "im", "il", "ir")
# Words that make the order of their neighbours meaningful ("A to B", "B into A"): the
# directed ones and the prepositions that mark a role ("animals that prey on wolves").
DIRECTION_CONNECTORS = _words(
    "to into from than onto toward towards over under after before of per on at by with for"
    " about against"
)
# Coordination is commutative: "a fruit or a vegetable" asks what "a vegetable or a fruit"
# does, "TCP and UDP" what "UDP and TCP" does.
SYMMETRIC_CONNECTORS = _words("and or nor versus vs between")
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
            position += 1
            continue
        if token.text.endswith("n't"):
            analysis.negations += 1
        # Hyphenated words are compared part by part: "non-fast-forward" == "non fast forward".
        base = token.text[:-3] if token.text.endswith("n't") else token.text.split("'")[0]
        for part in base.split("-") if "-" in base else [base]:
            if not part:
                continue
            # An acronym is not an inflected word: "HTTPS" is not the plural of "HTTP".
            acronym = len(part) > 1 and token.original.split("'")[0].isupper()
            word = Word(
                text=part,
                stem=part if acronym else stem(part),
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
