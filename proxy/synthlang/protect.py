"""Finding the parts of a prompt that compression must never alter.

Two tiers, because they are found at different moments of the pipeline:

- *hard* spans are literal content whose exact characters matter: code, URLs, e-mail addresses,
  numbers with their units, quoted strings, payload lines (CSV, key: value, JSON), markup tags,
  indented blocks and proper names;
- *condition* spans are whole sentences that carry a negation, a condition or a quantity bound
  (`not`, `never`, `unless`, `except`, `only`, `must`, `if`, `at least`, ...). A negation's scope
  often runs across commas ("do not use emojis, slang or all caps"), so the sentence is the unit.

All patterns are compiled once at import; each is a single linear scan over the text.
"""

from __future__ import annotations

import bisect
import json
import re

from proxy.synthlang.patterns import phrase_alternation, word_phrases_regex

# Negations, conditions and bounds. A sentence containing one is kept verbatim. Contracted
# negations ("don't", "can't", "isn’t") are matched generically by the `n't` ending.
CONDITION_WORDS = (
    # Negations and prohibitions ("omit X" is "do not include X").
    "not",
    "no",
    "never",
    "nor",
    "neither",
    "none",
    "nothing",
    "nobody",
    "nowhere",
    "cannot",
    "without",
    "avoid",
    "omit",
    "exclude",
    "excluding",
    "leave out",
    "refrain",
    "forbidden",
    "prohibited",
    # Restrictions, obligations and alternatives.
    "only",
    "must",
    "otherwise",
    "instead",
    "rather than",
    # Bounds, precision and order.
    "at least",
    "at most",
    "more than",
    "less than",
    "fewer than",
    "greater than",
    "up to",
    "exactly",
    "maximum",
    "minimum",
    "round",
    "rounded",
    "rounding",
    "before",
    "after",
    # Subordinate conditions: see SUBORDINATORS.
    "if",
    "unless",
    "until",
    "whether",
    "except",
    "when",
    "whenever",
)
# A condition introduced by one of these is a clause of its own ("If asked, say ..."): it is
# kept up to the clause end, and the instruction it conditions is an ordinary clause, guarded
# by its own negations if it has any.
SUBORDINATORS = frozenset(("if", "unless", "until", "whether", "except", "when", "whenever"))
_CONDITION_ALTERNATION = phrase_alternation(CONDITION_WORDS)
# Case-sensitive over explicit case variants: three times faster than re.IGNORECASE here.
_CONDITION_VARIANTS = {
    variant for word in CONDITION_WORDS for variant in (word, word.capitalize(), word.upper())
}
CONDITION_RE = re.compile(word_phrases_regex(CONDITION_WORDS, suffix=r"\b"))
# Contracted negations ("don't", "isn’t"), found from their ending.
NEGATION_CONTRACTION_RE = re.compile(r"[nN]['’][tT]\b")

# Capitalised words that are sentence structure rather than names; they must stay visible to
# CONDITION_RE and to the phrase rules.
_FUNCTION_WORDS = frozenset(
    [word for word in CONDITION_WORDS if " " not in word]
    + ["i", "i'm", "i’m", "i'd", "i’d", "i've", "i’ve", "i'll", "i’ll"]
)

# Words that follow a number without being its unit ("from 9 to 12", "27 if").
_UNIT_STOPWORDS = (
    rf"(?i:{_CONDITION_ALTERNATION}|and|or|to|of|the|a|an|in|on|at|for|by|with|from|is|are|was|"
    r"were|be|it|that|this|then|than|as|so|but|per)\b"
)

# Private-use code points stand in for protected spans while the rules run (see engine.py).
# Any that already occur in the input are protected like everything else, so they cannot be
# confused with placeholders.
PLACEHOLDER_CHARS = "\U000f0000-\U0010fffd"

_FENCE_RE = re.compile(
    r"^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}(?P=fence)[`~]*[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)

_NAME_LINKS = r"(?:of|the|and|for|de|del|der|la|le|van|von|du|da|di|y|&)"

# One regex per kind of literal, each starting with a literal or a character class, so that `re`
# can skip quickly to candidate positions; `needle` skips a scan when the text cannot match,
# and `ascii_ok=False` skips scans for non-ASCII delimiters on ASCII text. (One alternation of
# all of them, with lookbehinds in front, was five times slower.)
_HARD_PATTERNS = (
    # (name, needle, ascii_ok, pattern)
    ("inline_code", "`", True, r"``[^\n]+?``|`[^`\n]+`"),
    ("tag", "<", True, r"</?[A-Za-z][\w:-]*(?:\s[^<>\n]{0,300})?/?>"),
    ("dquote", '"', True, r"\"[^\"\n]{0,800}\""),
    # Non-ASCII quotes, and placeholder characters already present in the input.
    (
        "unicode_quote",
        None,
        False,
        rf"“[^”]{{0,800}}”|‘[^’\n]{{0,400}}’|«[^»]{{0,2000}}»|‹[^›]{{0,800}}›"
        rf"|„[^“”\n]{{0,800}}[“”]|「[^」]{{0,800}}」|『[^』]{{0,800}}』|[{PLACEHOLDER_CHARS}]+",
    ),
    ("squote", "'", True, r"'(?<!\w')[^'\n]{1,300}'(?!\w)"),
    # Numbers keep their separators, range, suffix and the unit word after them; a sign or
    # currency symbol in front is added by `hard_spans`.
    (
        "number",
        None,
        True,
        (
            r"\d(?:[\d,._:/–—-]*\d)?\)?"
            r"(?:[%‰°]|(?<=\d)[a-zA-Z]{1,4}\b)?"
            rf"(?:[ \t]?(?!{_UNIT_STOPWORDS})(?:[°]?[A-Za-zµ€$£¥%°]+))?"
        ),
    ),
    ("path", "/", True, r"/(?<![\w/]/)[\w.-]+(?:/[\w.-]+)*|~/[\w.-]+(?:/[\w.-]+)*"),
    ("tag_or_mention", None, True, r"[#@]\w+"),
)
_HARD_RES = tuple(
    (name, needle, ascii_ok, re.compile(pattern))
    for name, needle, ascii_ok, pattern in _HARD_PATTERNS
)
_NUMBER_PREFIX_CHARS = "$€£¥₹(-+−"

# Anchored on their rare middle character, then grown to both sides.
_URL_ANCHOR_RE = re.compile(r"://|www\.")
_URL_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}$")
_URL_TAIL_RE = re.compile(r"[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}]")
_EMAIL_DOMAIN_RE = re.compile(r"[\w-]+(?:\.[\w-]+)+\b")
_IDENTIFIER_ANCHOR_RE = re.compile(r"[./:@#_](?=\w)")
_IDENTIFIER_CHARS = "_./:@#-"
_IDENTIFIER_RIGHT_RE = re.compile(r"[\w./:@#-]*\w")

# Proper names and acronyms; a run joined by spaces or linking words is one span.
_NAME_WORD = r"[A-Z](?:[\w'’&-]|\.(?=\w))*"
_CAPITALISED_FUNCTION_WORD = (
    rf"(?:{phrase_alternation({w.capitalize() for w in _FUNCTION_WORDS})}|[A-Z][a-z]*n['’]t)\b"
)
_NAME_RUN_RE = re.compile(
    rf"{_NAME_WORD}(?:[ \t]+(?:{_NAME_LINKS}[ \t]+)*(?!{_CAPITALISED_FUNCTION_WORD}){_NAME_WORD})*"
)

_KEY_VALUE_RE = re.compile(
    r"[ \t]*(?:[-*][ \t]+)?(?P<key>\w[\w .()/-]{0,40}):[ \t]+(?P<value>.{1,120})"
)
_EXAMPLE_LINE_RE = re.compile(
    r"(?:Q|A|Question|Answer|Input|Output|Example(?: \d+)?|Expected(?: output)?|User|Assistant|"
    r"Human|AI|Problem|Solution|Response)[ \t]*:"
)
_PROSE_SENTENCE_RE = re.compile(r"[^\n]*?[.!?](?:\s|$)")
_SENTENCE_START_RE = re.compile(r"(?:[.!?:;]\s+|\n[ \t]*(?:[-*+•>]|\d+[.)])?[ \t]*|[\"'(“]+)$")
_CLAUSE_OPENER_RE = re.compile(r"[.!?](?=\s)|[\n,;:(]| [—–](?= )")
_CLAUSE_END_RE = re.compile(
    r"[.!?;](?=\s|$)|\n"
    r"|,(?=[ \t]+(?:so|but|because|since|while|whereas|although|though|which|then|yet)\b)"
)
_SUBCLAUSE_END_RE = re.compile(r"[.!?;](?=\s|$)|\n|,")
_LIST_END_RE = re.compile(r"[.!?](?=\s|$)|\n")
_JSON_OPENER_PRECEDERS = " \t\n\r:=("
_JSON_START_RE = re.compile(r"[\[{]")
_JSON_DECODER = json.JSONDecoder()


def code_fence_spans(text: str) -> list[tuple[int, int]]:
    """Fenced code blocks (``` or ~~~), including their fences; an unclosed fence runs to the
    end of the text, as Markdown renders it."""
    if "```" not in text and "~~~" not in text:
        return []
    return [match.span() for match in _FENCE_RE.finditer(text)]


def _url_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _URL_ANCHOR_RE.finditer(text):
        start = match.start()
        if match.group() == "://":
            scheme = _URL_SCHEME_RE.search(text, max(0, start - 16), start)
            if not scheme:
                continue
            start = scheme.start()
        elif start and (text[start - 1].isalnum() or text[start - 1] in "./"):
            continue
        tail = _URL_TAIL_RE.match(text, match.end())
        if tail:
            spans.append((start, tail.end()))
    return spans


def _email_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    position = text.find("@")
    while position != -1:
        start = position
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_.+-"):
            start -= 1
        domain = _EMAIL_DOMAIN_RE.match(text, position + 1)
        if start < position and domain:
            spans.append((start, domain.end()))
        position = text.find("@", position + 1)
    return spans


def _identifier_spans(text: str) -> list[tuple[int, int]]:
    """Dotted names, paths, snake_case, `a::b`: "stats_utils.py", "e.g.", "forgeline.rpc"."""
    spans = []
    covered = -1
    for match in _IDENTIFIER_ANCHOR_RE.finditer(text):
        position = match.start()
        if position < covered or position == 0 or not text[position - 1].isalnum():
            continue
        start = position
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in _IDENTIFIER_CHARS):
            start -= 1
        right = _IDENTIFIER_RIGHT_RE.match(text, position + 1)
        end = right.end() if right else position + 1
        spans.append((start, end))
        covered = end
    return spans


def _name_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _NAME_RUN_RE.finditer(text):
        start, end = match.span()
        if start and (text[start - 1].isalnum() or text[start - 1] in "_'’"):
            continue
        run = match.group()
        # A capitalised negation or condition opening the run ("If Northwind ...") must stay
        # visible to CONDITION_RE, so it is cut off the front.
        first = run.split(None, 1)[0]
        lowered = first.lower().rstrip(".-'’")
        if lowered in _FUNCTION_WORDS or lowered.endswith(("n't", "n’t")):
            rest = _NAME_RUN_RE.search(text, start + len(first), end)
            if not rest:
                continue
            start = rest.start()
            run = text[start:end]
        while run and run[-1] in ".-'’":
            run = run[:-1]
            end -= 1
        if not run:
            continue
        # A lone capitalised word opening a sentence is usually just capitalised prose.
        if (
            len(run) == 1 or (run[1:].islower() and " " not in run and "\t" not in run)
        ) and _at_sentence_start(text, start):
            continue
        spans.append((start, end))
    return spans


def is_payload_line(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if _EXAMPLE_LINE_RE.match(stripped):
        # Worked examples and transcripts show the model what to produce: they are data.
        return True
    if line.startswith(("    ", "\t")):
        # Indented lines: code, YAML, nested data; indentation is meaningful there.
        return True
    if stripped.startswith("|") and stripped.endswith("|"):
        return True
    if line.count("\t") >= 2:
        return True
    commas = line.count(",")
    # Prose has commas too; delimited rows have several cells and rarely a space after a comma.
    if commas >= 2 and line.count(", ") * 2 < commas:
        return True
    match = _KEY_VALUE_RE.fullmatch(line)
    if match:
        # A "Label: sentence." line is prose; "Weight: 6.1 g per earbud" is data.
        value = match.group("value").strip()
        return len(match.group("key").split()) <= 4 and not _PROSE_SENTENCE_RE.fullmatch(
            value + " "
        )
    return False


def payload_line_spans(text: str) -> list[tuple[int, int]]:
    """Lines of data: CSV/TSV rows, table rows, key: value pairs, indented blocks."""
    spans = []
    offset = 0
    for line in text.split("\n"):
        if is_payload_line(line):
            spans.append((offset, offset + len(line)))
        offset += len(line) + 1
    return spans


def json_spans(text: str) -> list[tuple[int, int]]:
    """Embedded JSON objects and arrays that parse as JSON."""
    spans = []
    position = 0
    for match in _JSON_START_RE.finditer(text):
        start = match.start()
        if start < position or (start and text[start - 1] not in _JSON_OPENER_PRECEDERS):
            continue
        try:
            _value, end = _JSON_DECODER.raw_decode(text, start)
        except ValueError:
            continue
        spans.append((start, end))
        position = end
    return spans


def _at_sentence_start(text: str, index: int) -> bool:
    window = "\n" + text[:index] if index <= 12 else text[index - 12 : index]
    return bool(_SENTENCE_START_RE.search(window))


def hard_spans(text: str) -> list[tuple[int, int]]:
    """Literal content that must come through byte for byte (code fences excluded: the engine
    cuts them out before anything else)."""
    spans = payload_line_spans(text) + json_spans(text)
    spans += _url_spans(text) + _identifier_spans(text) + _name_spans(text)
    if "@" in text:
        spans += _email_spans(text)
    is_ascii = text.isascii()
    for name, needle, ascii_ok, pattern in _HARD_RES:
        if (needle and needle not in text) or (is_ascii and not ascii_ok):
            continue
        if name == "number":
            for match in pattern.finditer(text):
                start = match.start()
                # Currency, sign and an opening bracket belong to the number: "-$(20)".
                while start > 0 and text[start - 1] in _NUMBER_PREFIX_CHARS:
                    start -= 1
                spans.append((start, match.end()))
        else:
            spans.extend(match.span() for match in pattern.finditer(text))
    return merge_spans(spans)


def _clause_starts(text: str) -> list[int]:
    """Positions where a clause may start: after sentence ends, line breaks, , ; : ( and dashes."""
    return [match.end() for match in _CLAUSE_OPENER_RE.finditer(text)]


def condition_spans(text: str) -> list[tuple[int, int]]:
    """The clause holding each negation, condition or bound.

    A negation, restriction or bound is kept from its clause start to the end of its sentence
    (a negation's scope runs right, across lists: "do not use emojis, slang or all caps"),
    stopping early where a comma opens an unrelated clause (", so ...", ", because").
    A subordinate condition opening its clause ("If asked, ...", "When comparing products,
    ...") is kept up to its own comma; a condition that introduces a list ("If the user
    describes any of the following: ...; ...") keeps the whole list it governs.
    """
    spans = []
    covered_until = -1
    length = len(text)
    clause_starts = None
    hits = list(CONDITION_RE.finditer(text))
    if "n'" in text or "n’" in text or "N'" in text:
        hits += NEGATION_CONTRACTION_RE.finditer(text)
        hits.sort(key=lambda match: match.start())
    for match in hits:
        if match.start() < covered_until:
            continue
        if clause_starts is None:
            clause_starts = _clause_starts(text)
        index = bisect.bisect_right(clause_starts, match.start()) - 1
        start = clause_starts[index] if index >= 0 else 0
        word = match.group().lower()
        opens_clause = word in SUBORDINATORS and not text[start : match.start()].strip()
        end_match = (_SUBCLAUSE_END_RE if opens_clause else _CLAUSE_END_RE).search(
            text, match.end()
        )
        end = end_match.end() if end_match else length
        if end_match and end_match.group().startswith(","):
            end = end_match.start()
        elif end_match and end_match.group() == ";" and ":" in text[match.end() : end]:
            # A list the condition introduces belongs to it, up to the sentence end.
            list_end = _LIST_END_RE.search(text, end)
            end = list_end.end() if list_end else length
        spans.append((start, end))
        covered_until = end
    return merge_spans(spans)


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted union of possibly overlapping half-open spans."""
    if not spans:
        return []
    spans = sorted(spans)
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            if end > last_end:
                merged[-1] = (last_start, end)
        else:
            merged.append((start, end))
    return merged


def protected_spans(text: str) -> list[tuple[int, int]]:
    """Every span of `text` that no compression level may change (for checks and tests)."""
    return merge_spans(code_fence_spans(text) + hard_spans(text) + condition_spans(text))
