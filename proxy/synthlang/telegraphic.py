"""The telegraphic instruction style of `high`: scaffolding, articles and complementisers out.

A compressed prompt is read by a strong model, so instruction scaffolding can go: "You should
always respond politely" -> "Always respond politely". These run on text in which every
protected span and every negation and condition clause is already masked, so "You must not ..."
is never reached; the rules only ever see plain instructions and descriptions. They change the
wording of what they touch (an ordinal's article, a rule's "the"), which is why they are `high`
only, an organization's opt-in.
"""

from __future__ import annotations

import re

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
