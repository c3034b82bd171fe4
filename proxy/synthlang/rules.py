"""Rewrite rules for each compression level.

The engine runs these on *masked* text: every protected span has already been replaced by a
private-use placeholder character, which no pattern here can match (placeholders are neither
word characters nor whitespace). So a rule can only ever touch ordinary prose.

Rules are general English: politeness formulas, filler, verbose phrasings with a concise
equivalent, and (at `high`) symbolic notation. Every replacement is checked against the target
tokenizer before use and dropped if it does not save tokens there (see `word_rules`).
"""

from __future__ import annotations

import re
from functools import cache

from proxy.synthlang.patterns import word_phrases_regex
from proxy.synthlang.phrases import (
    DISCOURSE_FILLERS,
    FILLER_WORDS,
    HIGH_ONLY_PHRASES,
    SYMBOL_PHRASES,
    VERBOSE_PHRASES,
)
from proxy.tokens import count_tokens

# --- low: whitespace ------------------------------------------------------------------------

TRAILING_SPACE_RE = re.compile(r"[ \t]+(?=\n)")
BLANK_LINES_RE = re.compile(r"\n(?:[ \t]*\n){2,}")

# --- medium: politeness formulas ------------------------------------------------------------
# Removed before negation/condition sentences are protected, because their "if" and "not" are
# courtesy, not conditions ("if it's not too much trouble"). A formula is only tried where the
# trigger regex finds one of the words formulas open with, so this stays a single fast scan.

_POLITENESS_FORMULAS = (
    # Greetings opening the text or a line.
    (
        "hi hello hey greetings good dear",
        r"(?i)(?<![^\n])[ \t]*(?:hi|hello|hey|greetings|good (?:morning|afternoon|evening)|"
        r"dear all)(?:[ \t]+(?:there|all|everyone|team|folks))?[ \t]*[!,.]+[ \t]*",
        "",
    ),
    # "I hope you're having a lovely day." and similar well-wishing.
    (
        "i",
        r"(?i)I hope (?:you(?:['’]re| are)|you have|this (?:email |message |note )?finds you|"
        r"all is|your)[^.!?\n]{0,40}\b(?:well|day|week|weekend|morning|afternoon|evening|good|"
        r"great)\b[^.!?\n]{0,10}[.!]+[ \t]*",
        "",
    ),
    (
        "i",
        r"(?i)(?:I was (?:sort of |kind of |just |really )?wondering|I wonder(?:ed)?|"
        r"I was (?:just |really )?hoping)(?: if| whether)?(?: that)? you "
        r"(?:could|can|would|might)(?: possibly| perhaps| maybe| please)?(?: be able to)?[ \t]+",
        "",
    ),
    (
        "could can would will",
        r"(?i)(?:could|can|would|will) you (?:please |kindly |possibly |maybe |perhaps )?"
        r"be able to[ \t]+(?=[a-z])",
        "",
    ),
    (
        "could can would will",
        r"(?i)(?:could|can|would|will) you (?:please|kindly)[ \t]+(?=[a-z])",
        "",
    ),
    (
        "i",
        r"(?i)(?:I would|I'd|I’d) (?:really |truly |greatly |so )?appreciate it if you could"
        r"(?: possibly| please)?[ \t]+",
        "",
    ),
    ("i", r"(?i)(?:I would|I'd|I’d) (?:really |so )?(?:like|love) (?:for )?you to[ \t]+", ""),
    ("i", r"(?i)I (?:want|need) you to[ \t]+", ""),
    (
        "if",
        r"(?i)if (?:it(?:['’]s not| is not| isn['’]t| would not be| wouldn['’]t be) too much "
        r"(?:trouble|to ask)|you don['’]t mind|"
        r"you would be so kind|that(?:['’]s| is) (?:ok|okay|alright|all right))\b",
        "",
    ),
    (
        "any",
        r"(?i)any (?:help|advice|input|assistance|guidance|suggestions?) (?:would be|is|will be) "
        r"(?:greatly |much |really |very |truly |hugely )?appreciated[.!]*[ \t]*",
        "",
    ),
    (
        "i",
        r"(?i)I (?:really |truly |greatly |so |would |'d |’d )*(?:do )?appreciate (?:any help you "
        r"can (?:give|offer)(?: me)?(?: with this)?|any help with this|all your help|any help|"
        r"your help|the help|your time|it)(?: so much| a lot| in advance)?[.!]*[ \t]*",
        "",
    ),
    (
        "let tell",
        r"(?i)(?:let me know|tell me) if you (?:need|have|want) (?:any )?(?:more|further|other|"
        r"additional) (?:info|information|details|context|questions)[.!]*[ \t]*",
        "",
    ),
    (
        "so sorry i",
        r"(?i)(?:so,? )?(?:sorry|I apologi[sz]e)(?: in advance)?,? "
        r"(?:for|about|if|because|since|as) "
        r"(?:the|this|my)\b[^.!?\n]{0,40}\b(?:long|lengthy|rambling)\b[^.!?\n,]{0,20}"
        r"(?:message|post|question|email|text|one)(?:[.!]+[ \t]*|,? (?:but|and|so) |,[ \t]*)",
        "",
    ),
    (
        "i",
        r"(?i)I (?:really |do |just )*hope (?:you don['’]t mind|it['’]s (?:ok|okay|alright|fine))"
        r"(?: (?:me|my) asking)?(?:[.!]+[ \t]*|,? (?:but|and|so) |,[ \t]*)",
        "",
    ),
    (
        "i",
        r"(?i)(?:I['’]m|I am) (?:reaching out|writing|messaging|contacting you|getting in touch)"
        r"(?: to you)?(?: today)? (?:because|since|as)[ \t]+",
        "",
    ),
    # "If you could X, I'd be grateful." is a request for X, phrased as a condition.
    (
        "if and",
        r"(?i)(?:and )?if you could (?:please |kindly |possibly |maybe |perhaps )?"
        r"(?P<request>[^.!?\n]{1,300}?),? (?:I(?:['’]d| would) be (?:really |very |so |truly |"
        r"most |super )*(?:grateful|thankful|happy|glad)|(?:that|it|this) would (?:\w+ ){0,2}be "
        r"(?:really |absolutely |so |very |just |incredibly |super |honestly )*(?:great|"
        r"wonderful|amazing|awesome|fantastic|lovely|perfect|much appreciated|a huge help|"
        r"helpful))(?P<end>[.!]+)",
        r"\g<request>.",
    ),
    (
        "i",
        r"(?i)I (?:thought|think|figured) (?:that )?(?:maybe |perhaps )?you (?:could|might|"
        r"would be able to|can)(?: possibly| maybe)?[ \t]+",
        "",
    ),
    # "Thank you so, so much in advance!" as a sentence of its own.
    (
        "many thanks thank thx cheers",
        r"(?i)(?:(?<=[.!?][ \t])|(?<![^\n]))(?:many thanks|thanks|thank you|thx|cheers)(?! to\b)"
        r"(?:[ ,]+(?:so|very|so very|much|a lot|a ton|a million|again|in advance|for (?:your|the|"
        r"any|all your) (?:help|time|assistance|patience|support)))*"
        r"(?:[ \t,]*I (?:really |truly |so )*(?:do )?appreciate[^.!?\n]{0,60})?"
        r"[ \t,]*[.!]*[ \t]*(?=\n|$)",
        "",
    ),
    # "Please keep it short." is the instruction "Keep it short."; only where "please" opens
    # the sentence ("say please" keeps it).
    (
        "please kindly",
        r"(?i)(?:(?<![^\n])|(?<=[.!?][ \t]))(?:please|kindly)(?:,[ \t]*|[ \t]+)(?=[a-z])",
        "",
    ),
    # Discourse markers opening a sentence: "So, basically, ...", "Anyway, ...".
    (
        "so well anyway anyways ok okay alright",
        r"(?i)(?:(?<![^\n])|(?<=[.!?][ \t]))(?:so|well|anyway|anyways|ok|okay|alright)"
        r"(?:,[ \t]*|[ \t]+so,[ \t]*)(?=\S)",
        "",
    ),
    # ", that would be wonderful." closes the sentence it hangs off; its full stop survives.
    (
        "that it this",
        r"(?i)(?:that|it|this) would (?:\w+ ){0,2}be (?:really |absolutely |so |very |just |"
        r"incredibly |super |honestly )*(?:great|wonderful|amazing|awesome|fantastic|lovely|"
        r"much appreciated|a huge help|helpful)[.!]+",
        ".",
    ),
    # "Just to give you some background," introduces; it does not inform.
    (
        "just to",
        r"(?i)(?:just )?to give you (?:a (?:little )?bit of |some |a little )?(?:background|"
        r"context)[,:][ \t]*",
        "",
    ),
)
# Formulas by the (lower-case) word they open with, so each trigger tries only its own.
POLITENESS_BY_OPENER: dict[str, list[tuple[re.Pattern, str]]] = {}
for _openers, _pattern, _replacement in _POLITENESS_FORMULAS:
    for _opener in _openers.split():
        POLITENESS_BY_OPENER.setdefault(_opener, []).append((re.compile(_pattern), _replacement))
POLITENESS_TRIGGER_RE = re.compile(word_phrases_regex(POLITENESS_BY_OPENER, suffix=r"(?![\w-])"))


def remove_politeness(text: str, *, recapitalise: bool = True) -> str:
    """Text without greetings, thanks, well-wishing and request framing.

    With `recapitalise`, the word that a removal leaves at the start of a sentence takes a
    capital; without it, every kept word keeps its case exactly ("Please answer from our
    guideline only" -> "answer from our guideline only") and each removal leaves
    `REMOVAL_MARK` for `tidy_removals`."""
    parts = []
    position = 0
    capitalise = False
    removal = "" if recapitalise or REMOVAL_MARK in text else REMOVAL_MARK
    for trigger in POLITENESS_TRIGGER_RE.finditer(text):
        start = trigger.start()
        if start < position:
            continue
        # Greetings may be indented; the formula matches from the line start.
        line_start = start
        while line_start > position and text[line_start - 1] in " \t":
            line_start -= 1
        for pattern, replacement in POLITENESS_BY_OPENER[trigger.group().lower()]:
            match = pattern.match(text, line_start) or pattern.match(text, start)
            if match:
                before = text[position : match.start()]
                if replacement == ".":
                    # ", that would be great." -> "." ; after "?" or "." nothing is needed.
                    before = before.rstrip(" \t").rstrip(",")
                    if before.endswith(("?", ".", "!")) or not before.strip():
                        replacement = ""
                if capitalise and recapitalise:
                    before = _capitalise_first(before)
                parts.append(before)
                kept = match.expand(replacement) if "\\g<" in replacement else replacement
                # A formula that opened a sentence leaves the rest of it to start one.
                # (Also when only removed text stood between it and a sentence start.)
                pending = capitalise and not before.strip()
                opens = pending or _opens_sentence(text, match.start())
                if kept and opens and recapitalise:
                    # "If you could write a summary, ..." -> "Write a summary."
                    kept = _capitalise_first(kept)
                parts.append(kept or removal)
                position = match.end()
                capitalise = not replacement and opens
                break
    if not parts:
        return text
    tail = text[position:]
    parts.append(_capitalise_first(tail) if capitalise and recapitalise else tail)
    return "".join(parts)


def _opens_sentence(text: str, index: int) -> bool:
    before = text[:index].rstrip(" \t")
    return not before or before[-1] in ".!?\n"


def _capitalise_first(segment: str) -> str:
    stripped = segment.lstrip(" \t")
    if stripped[:1].islower():
        offset = len(segment) - len(stripped)
        return segment[:offset] + stripped[0].upper() + stripped[1:]
    return segment


# --- medium: filler and verbose phrasing (lists in phrases.py) ------------------------------
# "kind of" / "sort of" are hedges in "I kind of need", nouns in "this kind of error".
HEDGES = ("kind of", "sort of")
_NOUN_DETERMINERS = frozenset(
    ("a", "an", "the", "this", "that", "what", "some", "any", "one", "same", "these", "those",
     "which", "every", "each", "no", "all", "another", "other", "different")
)  # fmt: skip


def _saves_tokens(phrase: str, replacement: str, encoding: str) -> bool:
    # Measured in running text (after a space, before a word), where phrases usually appear.
    before = count_tokens(f" {phrase} x", encoding=encoding)
    after = count_tokens(f" {replacement} x" if replacement else " x", encoding=encoding)
    return after < before


# A noncharacter marks where a capitalised word was removed.
_CAPITALISE_MARK = "\uffff"
_MARKED_START_RE = re.compile("\uffff(?P<lead>[ \t,\uffff]*)(?P<first>[a-z])")


class WordRules:
    """One scan that applies phrase rewrites, filler removal and hedge removal together."""

    def __init__(self, replacements: dict[str, str]):
        self.replacements = {" ".join(key.split()): value for key, value in replacements.items()}
        self.pattern = (
            re.compile(word_phrases_regex(self.replacements)) if self.replacements else None
        )

    def _replace(self, match: re.Match, mark: str, removal: str) -> str:
        original = match.group()
        key = " ".join(original.lower().split())
        if key in HEDGES:
            # Keep the noun use: "this kind of error", "what sort of plan".
            before = match.string[max(0, match.start() - 12) : match.start()].split()
            if before and before[-1].lower() in _NOUN_DETERMINERS:
                return original
        replacement = self.replacements[key]
        if removal and not replacement:
            return removal
        if original[0].isupper():
            if not replacement:
                # "Basically, our team ..." -> "Our team ...": the next word takes the capital.
                return mark
            if replacement[0].islower():
                return replacement[0].upper() + replacement[1:]
        return replacement

    def apply(self, text: str, *, recapitalise: bool = True) -> str:
        """The rewritten text. Without `recapitalise`, kept words keep their case and each
        removal leaves `REMOVAL_MARK` for `tidy_removals`."""
        if self.pattern is None:
            return text
        # Texts that already hold a mark are simply not re-capitalised (or tidied).
        mark = "" if _CAPITALISE_MARK in text or not recapitalise else _CAPITALISE_MARK
        removal = "" if recapitalise or REMOVAL_MARK in text else REMOVAL_MARK
        text = self.pattern.sub(lambda match: self._replace(match, mark, removal), text)
        if not mark or mark not in text:
            return text
        return _MARKED_START_RE.sub(_restart_sentence, text).replace(mark, "")


def _restart_sentence(match: re.Match) -> str:
    """The word after a removed sentence opener takes the capital; at a line start the
    opener's trailing space and comma go too ("From what I can see, it ..." -> "It ...")."""
    lead = match.group("lead")
    start = match.start()
    if start == 0 or match.string[start - 1] == "\n":
        lead = lead.replace(" ", "").replace("\t", "").replace(",", "")
    return lead + match.group("first").upper()


@cache
def word_rules(encoding: str, level: str) -> WordRules:
    """The rewrites for `level` ("medium" or "high") that save tokens on `encoding`.

    `medium` keeps to rewrites that mean the same wherever they stand; `high` adds the
    intensifiers, hedges and concise forms that are wrong in some sentences, and symbols."""
    if level == "high":
        replacements = dict.fromkeys((*FILLER_WORDS, *HEDGES, *DISCOURSE_FILLERS), "")
        phrases = {**VERBOSE_PHRASES, **HIGH_ONLY_PHRASES, **SYMBOL_PHRASES}
    else:
        replacements = dict.fromkeys(DISCOURSE_FILLERS, "")
        phrases = VERBOSE_PHRASES
    replacements.update(
        (phrase, concise)
        for phrase, concise in phrases.items()
        if _saves_tokens(phrase, concise, encoding)
    )
    return WordRules(replacements)


def symbol_rule_table(encodings: tuple[str, ...]) -> list[tuple[str, str, dict[str, bool]]]:
    """Which SynthLang symbol rules apply on which encoding (for docs and reports)."""
    return [
        (phrase, symbol, {enc: _saves_tokens(phrase, symbol, enc) for enc in encodings})
        for phrase, symbol in SYMBOL_PHRASES.items()
    ]


# --- cleanup after removals -----------------------------------------------------------------
# A noncharacter left where a phrase was removed, so the cleanup touches only those places:
# "I, basically, think" -> "I, \ufffe, think" -> "I, think"; "(Crumb & Co., we" has no mark
# and keeps its comma.
REMOVAL_MARK = "\ufffe"
_REMOVAL_RE = re.compile(
    r"(?P<left>,?)(?P<lspace>[ \t]*)\ufffe(?:[ \t,]*\ufffe)*(?P<rspace>[ \t]*)(?P<right>,?)"
    r"[ \t]*"
)
_NO_SPACE_AFTER = "([{\"'“‘«„ \t\n"


def _tidy_removal(match: re.Match) -> str:
    before = match.string[: match.start()]
    after = match.string[match.end() : match.end() + 1]
    if not before.strip() or not after or after in ".;:!?)]}\n":
        # Nothing left before it in the sentence, or punctuation follows: the removed phrase
        # takes its commas and spaces with it.
        return ""
    space = "" if before[-1] in _NO_SPACE_AFTER else " "
    return match.group("left") + space


def tidy_removals(text: str) -> str:
    """Commas and spaces around each `REMOVAL_MARK`, and the marks themselves."""
    if REMOVAL_MARK not in text:
        return text
    return _REMOVAL_RE.sub(_tidy_removal, text)


SPACE_BEFORE_PUNCT_RE = re.compile(r" +(?=[,.;:!?])")
DOUBLE_COMMA_RE = re.compile(r",[ \t]*(?=[,.;:!?])")
LEADING_COMMA_RE = re.compile(r"([.!?\n])[ \t]*,[ \t]*")


def tidy_after_removals(text: str) -> str:
    """Repairs the punctuation and spacing that removals leave behind."""
    text = SPACE_BEFORE_PUNCT_RE.sub("", text)
    text = DOUBLE_COMMA_RE.sub("", text)
    if text.startswith(","):
        text = text[1:].lstrip(" \t")
    return LEADING_COMMA_RE.sub(
        lambda match: "\n" if match.group(1) == "\n" else match.group(1) + " ", text
    )
