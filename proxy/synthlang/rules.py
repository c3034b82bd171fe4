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
# Runs of spaces; a literal start keeps the scan fast, and the callback leaves indentation.
SPACE_RUN_RE = re.compile(r"  +")


def collapse_inner_spaces(text: str) -> str:
    """Runs of spaces inside a line become one space; leading indentation is untouched."""
    if "  " not in text:
        return text

    def replace(match: re.Match) -> str:
        start = match.start()
        if start == 0 or text[start - 1] in "\n\t":
            return match.group()
        line_start = text.rfind("\n", 0, start) + 1
        if not text[line_start:start].strip():
            return match.group()
        return " "

    return SPACE_RUN_RE.sub(replace, text)


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

# Articles dropped in the terse SynthLang style. Off by default: faithful compression keeps
# instructions verbatim ("round to the nearest dollar"), and dropping articles breaks that.
ARTICLE_RE = re.compile(word_phrases_regex(("the", "an", "a"), suffix=r"[ \t]+(?=[a-z])"))


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


# --- medium: telegraphic instruction style --------------------------------------------------
# A compressed prompt is read by a strong model, so instruction scaffolding can go: "You should
# always respond politely" -> "Always respond politely". These run on text in which every
# negation and condition clause is already masked, so "You must not ..." is never reached; the
# rules only ever see plain instructions and descriptions.

# Words an article is never followed by: "a" there is a letter or a variable ("a and b").
_NOT_AFTER_ARTICLE = [
    "and",
    "or",
    "nor",
    "but",
    "to",
    "of",
    "in",
    "on",
    "at",
    "for",
    "with",
    "by",
    "from",
    "as",
    "than",
    "then",
    "if",
    "so",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "am",
    "has",
    "have",
    "had",
    "do",
    "does",
    "did",
    "will",
    "would",
    "can",
    "could",
    "should",
    "may",
    "might",
    "must",
    "not",
]
# "a few" means some, "few" means hardly any: these keep their article.
_KEEP_ARTICLE_BEFORE = ["few", "little", "lot", "bit", "couple", "while", "half"]
# (Every pattern below opens with a character class and checks the word boundary behind it:
# `re` then skips ahead quickly, where a leading `\b` or lookbehind scans at every position.)
ARTICLE_DROP_RE = re.compile(
    r"[TtAa](?<![\w'’-][TtAa])(?P<article>(?<=[Tt])he|(?<=[Aa])n?)[ \t]+"
    rf"(?!(?:{'|'.join(_NOT_AFTER_ARTICLE + _KEEP_ARTICLE_BEFORE)})\b)(?P<next>[a-z])"
)


def _drop_article(match: re.Match) -> str:
    following = match.group("next")
    return following.upper() if match.group()[0].isupper() else following


# Where a sentence or list item starts: the start of the text or a line (after a bullet or
# number), or after a sentence end.
_LINE_LEAD_RE = re.compile(r"[ \t]*(?:(?:[-*+•]|\d{1,2}[.)])[ \t]+)?")


def _opens_clause(text: str, index: int) -> bool:
    line_start = text.rfind("\n", 0, index) + 1
    if _LINE_LEAD_RE.fullmatch(text, line_start, index):
        return True
    return text[index - 2 : index - 1] in (".", "!", "?", ":", ";") and text[index - 1] in " \t"


_OBLIGATION = (
    r"(?:should|need to|have to|will need to|are expected to|are required to|are supposed to|"
    r"will want to|are asked to|are encouraged to)"
)
_ENSURE_TAIL = r"(?: that)?(?: you| to)[ \t]+"
_IMPORTANT = (
    r"it(?: is|['’]s) (?:very |really |extremely )?(?:important|essential|crucial|vital|critical|"
    r"key|necessary)(?: that you| for you to| to)[ \t]+"
)
_ALWAYS = rf"(?:always[ \t]+(?:(?:make sure|ensure|be sure){_ENSURE_TAIL})?)?"
# Past-tense verbs after "You" report what someone did ("You said ..."): they stay.
_NOT_IMPERATIVE = [
    "are",
    "were",
    "was",
    "am",
    "is",
    "can",
    "may",
    "might",
    "could",
    "would",
    "will",
    "shall",
    "should",
    "must",
    "have",
    "had",
    "has",
    "do",
    "does",
    "did",
    "don",
    "dont",
    "also",
    "still",
    "already",
    "just",
    "only",
    "never",
    "always",
    "often",
    "usually",
    "then",
    "said",
    "told",
    "gave",
    "made",
    "sent",
    "wrote",
    "got",
    "went",
    "saw",
    "came",
    "took",
    "knew",
    "thought",
    "found",
    "left",
    "put",
    "ran",
    "set",
    "let",
    "kept",
    "meant",
    "read",
    "heard",
    "felt",
    "lost",
    "paid",
    "brought",
    "bought",
]
# (first letter, rest of the pattern): see `word_phrases_regex` for why the first letter is
# matched on its own.
_SCAFFOLDING_PATTERNS = (
    # "You should always make sure to ..." / "Please make sure that you ..." / "It is
    # important to ...": the imperative says the same; a leading "always" is kept.
    ("p", rf"lease[ \t]+(?:you[ \t]+{_OBLIGATION}[ \t]+|(?:make sure|ensure|be sure)"
          rf"{_ENSURE_TAIL}|{_IMPORTANT}){_ALWAYS}"),
    ("y", rf"ou[ \t]+{_OBLIGATION}[ \t]+{_ALWAYS}"),
    ("m", rf"ake sure{_ENSURE_TAIL}{_ALWAYS}"),
    ("e", rf"nsure{_ENSURE_TAIL}{_ALWAYS}"),
    ("b", rf"e sure{_ENSURE_TAIL}{_ALWAYS}"),
    ("i", _IMPORTANT[1:] + _ALWAYS),
    # "Your job is to ..." states the task: the task itself is the instruction.
    ("y", r"our[ \t]+(?:main[ \t]+|primary[ \t]+)?(?:job|goal|task|role|purpose|aim|mission|"
          r"responsibility)[ \t]+is[ \t]+to[ \t]+"),
    # "You help members with ..." -> "Help members with ..."
    ("y", rf"ou[ \t]+(?!(?:{'|'.join(_NOT_IMPERATIVE)})\b)(?=[a-z]+(?<!ed)[ \t])"),
    # "Can you explain ...?" asks for the explanation.
    ("c", r"(?:an|ould)[ \t]+you[ \t]+(?:please[ \t]+)?(?=[a-z]+[ \t][^?\n]{0,300}\?)"),
    ("w", r"(?:ould|ill)[ \t]+you[ \t]+(?:please[ \t]+)?(?=[a-z]+[ \t][^?\n]{0,300}\?)"),
)  # fmt: skip
_SCAFFOLDING_OPENERS = "".join(sorted({letter for letter, _rest in _SCAFFOLDING_PATTERNS}))
_SCAFFOLDING_CLASS = f"[{_SCAFFOLDING_OPENERS}{_SCAFFOLDING_OPENERS.upper()}]"
SCAFFOLDING_RE = re.compile(
    rf"{_SCAFFOLDING_CLASS}(?<![\w'’-]{_SCAFFOLDING_CLASS})(?P<scaffold>(?i:"
    + "|".join(f"(?<={letter}){rest}" for letter, rest in _SCAFFOLDING_PATTERNS)
    + r"))(?P<next>[a-z])"
)
_ALWAYS_RE = re.compile(r"(?i)\balways\b")


def _drop_scaffolding(match: re.Match) -> str:
    if not _opens_clause(match.string, match.start()):
        return match.group()
    following = match.group("next")
    if _ALWAYS_RE.search(match.group("scaffold")):
        return f"Always {following}"
    return following.upper()


# "explain that the rate ..." -> "explain the rate ..."; only before a word that starts a
# clause, so the demonstrative "explain that approach" stays.
_THAT_VERBS = (
    "say|says|explain|explains|mention|mentions|note|notes|confirm|confirms|remind them|"
    "remind the user|remind users|remind customers|tell them|tell the user|tell users|"
    "tell customers|assume|assumes|suggest|suggests|think|believe|know|remember|ensure|ensures|"
    "clarify"
)
THAT_COMPLEMENT_RE = re.compile(
    r"[sSeEmMnNcCrRtTaAkKbB](?<![\w'’-][sSeEmMnNcCrRtTaAkKbB])"
    rf"(?P<verb>(?<=[sSeEmMnNcCrRtTaAkKbB])(?:{'|'.join(v[1:] for v in _THAT_VERBS.split('|'))}))"
    r"[ \t]+that"
    r"(?=[ \t]+(?:the|a|an|you|your|they|their|we|our|it|its|he|she|his|her|this|these|there|"
    r"any|all|each|every|some|[A-Z\U000f0000-\U0010fffd])\b)"
)
# "products that are provided" -> "products provided"; only before a participle.
RELATIVE_COPULA_RE = re.compile(
    r"[tTwW](?<![\w'’-][tTwW])(?:(?<=[tT])hat|(?<=[wW])hich|(?<=[wW])ho)[ \t]+(?:is|are)[ \t]+"
    r"(?=[a-z]+(?:ed|en)\b)"
)
# The serial comma before "and"/"or" costs a token and carries nothing in a list.
SERIAL_COMMA_RE = re.compile(r",(?<=[\w)],)(?=[ \t]+(?:and|or)[ \t])")


# Telegraphic rules are English grammar ("a" is a preposition in Spanish): they only run on
# text whose function words are mostly English, and long enough to carry scaffolding at all.
TELEGRAPHIC_MIN_CHARS = 300
_LANGUAGE_SAMPLE_CHARS = 4000
_ENGLISH_MARKERS = (" the ", " and ", " you ", " of ", " to ", " is ", " with ", " for ", " that ")
_OTHER_LANGUAGE_MARKERS = (
    " de ", " la ", " el ", " que ", " y ", " en ", " para ", " les ", " des ", " et ", " le ",
    " une ", " est ", " der ", " die ", " das ", " und ", " ist ", " mit ", " il ", " di ",
    " che ", " não ", " uma ", " com ", " het ", " een ", " van ",
)  # fmt: skip


def telegraphic_applies(text: str) -> bool:
    if len(text) < TELEGRAPHIC_MIN_CHARS:
        return False
    # str.count on a sample is a C loop; a regex over the whole text cost a fifth of `medium`.
    sample = text[:_LANGUAGE_SAMPLE_CHARS]
    english = sum(sample.count(word) for word in _ENGLISH_MARKERS)
    other = sum(sample.count(word) for word in _OTHER_LANGUAGE_MARKERS)
    return english >= 3 and english > 2 * other


def apply_telegraphic(text: str) -> str:
    """Instruction scaffolding, articles and complementisers out; meaning words stay."""
    text = SCAFFOLDING_RE.sub(_drop_scaffolding, text)
    text = THAT_COMPLEMENT_RE.sub(
        lambda match: match.string[match.start() : match.end("verb")], text
    )
    text = ARTICLE_DROP_RE.sub(_drop_article, text)
    # ", which is built on ..." -> ", built on ..."
    text = RELATIVE_COPULA_RE.sub("", text)
    return SERIAL_COMMA_RE.sub("", text)
