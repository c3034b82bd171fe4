"""Translate mode's pure pieces: the translator's instructions and the check of its answer.

No database and no upstream: ``proxy.translation`` calls the translator, stores verdicts
and applies them. A compiled form passes only if each protected span of the original (code,
URLs, numbers, names, quoted strings, every negation or condition sentence) appears in it
verbatim and it has fewer tokens; anything else is `rejected` and the original is kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings

from proxy.models import TranslatedPrompt
from proxy.synthlang.protect import protected_spans
from proxy.tokens import SUPPORTED_ENCODINGS, count_tokens

READY = TranslatedPrompt.Status.READY.value
REJECTED = TranslatedPrompt.Status.REJECTED.value


def min_ratio() -> float:
    return float(getattr(settings, "SYNTHLANG_TRANSLATE_MIN_RATIO", 0.1))


TRANSLATOR_SYSTEM_PROMPT = """\
You compile system prompts for another language model into compact SynthLang: a terse,
telegraphic notation that the other model reads as well as the original, in fewer tokens.

Rewrite the system prompt the user sends you. Rules:
1. Keep every instruction, role, goal, constraint, step and output requirement. Drop only
   filler, politeness, hedging and repetition.
2. Copy these exactly, character for character, never paraphrased, translated or reordered
   inside themselves: code and code blocks, inline `code`, URLs, e-mail addresses, file
   paths, numbers with their units, quoted strings, JSON/YAML/CSV data, names of people,
   products and organisations, acronyms.
3. Copy verbatim, as a whole, every sentence or clause that contains a negation, condition or
   limit: not, no, never, nor, none, cannot, without, unless, except, only, must, if,
   otherwise, until, instead, rather, whether, avoid, at least, at most, more than, less
   than, up to, exactly, maximum, minimum, and contractions such as don't or can't.
4. Everything else: short imperative fragments, one per line; `→` for "leads to / then",
   `:` for "is / means", lists separated by commas; no articles, no filler.
5. Answer with the compiled prompt only: no preamble, no explanation, no code fence around it.
"""


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def translator_body(*, text: str, model: str) -> dict:
    """Chat request asking the translator to compile `text`."""
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": TRANSLATOR_SYSTEM_PROMPT},
            {"role": "user", "content": text},
        ],
        "temperature": 0,
        # A compiled form at least as long as the original is rejected anyway; the cap
        # bounds what a runaway answer can cost.
        "max_completion_tokens": max(64, count_tokens(text, model=model)),
    }


def compiled_from_response(body: dict) -> tuple[str, str]:
    """(compiled text, finish reason) of a chat completion body."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return "", ""
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    text = content.strip() if isinstance(content, str) else ""
    # Models often wrap the answer in a fence despite rule 5; the fence is not the prompt.
    if text.startswith("```") and text.endswith("```") and text.count("```") == 2:
        text = text[3:-3].split("\n", 1)[-1].strip() if "\n" in text else ""
    return text, str(choice.get("finish_reason") or "")


@dataclass(frozen=True)
class TranslationCheck:
    """The verdict on a compiled form; `text` is what requests will use."""

    status: str  # READY or REJECTED
    text: str
    tokens_before: int
    tokens_after: int
    detail: str
    candidate: str = ""

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after


def missing_protected_spans(original: str, compiled: str) -> list[str]:
    """Protected spans of `original` that do not appear verbatim in `compiled`."""
    missing = []
    for start, end in protected_spans(original):
        # Span edges may hold the whitespace that separated it from the prose around it.
        piece = original[start:end].strip()
        if piece and piece not in compiled:
            missing.append(piece)
    return missing


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_translation(
    *, original: str, compiled: str, model: str, finish_reason: str = "stop"
) -> TranslationCheck:
    """Accept `compiled` only if it keeps every protected span and is shorter.

    Shorter means on the target model's tokenizer and on every other supported encoding,
    because one stored translation serves requests for every model of the organization.
    A candidate under `SYNTHLANG_TRANSLATE_MIN_RATIO` of the original's tokens is refused
    too: no faithful rewrite of a prompt drops that much, a truncated or echoed one does.
    """
    tokens_before = count_tokens(original, model=model)

    def rejected(reason: str) -> TranslationCheck:
        return TranslationCheck(
            REJECTED, original, tokens_before, tokens_before, reason[:500], compiled
        )

    if not compiled.strip():
        return rejected("The translator returned nothing.")
    if finish_reason == "length":
        return rejected("The translator's answer was cut off at its token limit.")
    missing = missing_protected_spans(original, compiled)
    if missing:
        shown = "; ".join(repr(_clip(piece)) for piece in missing[:3])
        return rejected(f"{len(missing)} protected span(s) not kept verbatim: {shown}")
    tokens_after = count_tokens(compiled, model=model)
    if tokens_after >= tokens_before:
        return rejected(f"Not shorter: {tokens_after} tokens against {tokens_before}.")
    for encoding in SUPPORTED_ENCODINGS:
        if count_tokens(compiled, encoding=encoding) >= count_tokens(original, encoding=encoding):
            return rejected(f"Not shorter on {encoding}.")
    if tokens_after < tokens_before * min_ratio():
        return rejected(
            f"Implausibly short ({tokens_after} of {tokens_before} tokens): "
            "content was probably dropped."
        )
    saved = tokens_before - tokens_after
    return TranslationCheck(
        READY, compiled, tokens_before, tokens_after, f"Saves {saved} tokens.", compiled
    )


def system_prompt_index(messages: list[dict]) -> int | None:
    """Index of the first system (or developer) message with plain text content."""
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") in ("system", "developer") and isinstance(
            message.get("content"), str
        ):
            return index
    return None
