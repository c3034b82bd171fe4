"""What the fake upstream answers a chat request: prose, a JSON document, or tool calls,
for each of ``n`` choices, with log probabilities when asked.

The rules, all deterministic (the same request gets the same answer):

- **Tools** (``tools`` of type ``function``): with ``tool_choice`` ``auto`` (the default
  when tools are offered) the model calls tools when the last message is a user turn, and
  answers in prose after a tool result; ``required`` and a named function always call;
  ``none`` never does. It calls the offered tools whose name the user's turn mentions (a
  word of four letters or more of ``get_weather`` is "weather"), or the first one when
  none is mentioned; ``parallel_tool_calls: false`` keeps it to one call, a named
  ``tool_choice`` calls that function alone. Arguments are built from the function's
  JSON schema (``fake_schema``), so they validate against it.
- **Structured output**: ``response_format`` ``json_schema`` answers a document valid
  under the schema; ``json_object`` answers ``{"answer": <the prose answer>}`` (and, as
  OpenAI does, refuses a request whose messages never say "json").
- **Prose**: "This is a fake answer to:" and the user's words (after tool results, the
  tools' words); ``max_tokens`` shortens prose only, never a document or arguments.
- ``logprobs``/``top_logprobs``: each token of the content with a probability from its
  id and position; the alternatives are neighbouring tokens, less likely, so the listed
  probabilities add up to less than one, as a real distribution's do.

A request the real API refuses (a ``tool_choice`` naming no offered tool, a schema with a
``$ref`` to nowhere) raises ``FakeRequestError``: a 400 from the fake upstream.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

from proxy.providers.fake_schema import SchemaError, example_for
from proxy.tokens import count_tokens, tokenizer_for_model

_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_JSON_PIECES = re.compile(r"\s*(?:\w+|[^\w\s]+)", re.UNICODE)
ARGUMENT_PIECE_CHARS = 8
MAX_TOP_LOGPROBS = 20
_ALTERNATIVE_STRIDE = 7919  # a prime: neighbouring alternatives that are not the token


class FakeRequestError(ValueError):
    """A request the upstream would refuse with a 400, naming the field at fault."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def body(self) -> dict:
        return {
            "error": {
                "message": str(self),
                "type": "invalid_request_error",
                "param": self.param,
                "code": None,
            }
        }


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call: its name and its parameters' JSON schema."""

    name: str
    parameters: dict


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # compact JSON text, as OpenAI sends it


@dataclass(frozen=True)
class ChoicePlan:
    index: int
    pieces: tuple[str, ...]  # the content as it streams; empty when the choice calls tools
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str

    @property
    def content(self) -> str | None:
        return "".join(self.pieces) if self.pieces else None


# --- Prose ----------------------------------------------------------------------------------


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def last_user_text(messages: list) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def answer_words(prompt_text: str, max_tokens: int | None, *, opening=None) -> list[str]:
    """The answer, word by word: a fixed opening and an echo of the question."""
    opening = opening or ["This", "is", "a", "fake", "answer", "to:"]
    words = [*opening, *prompt_text.split()[:40]]
    if max_tokens is not None:
        words = words[: max(1, max_tokens)]
    return [word if i == 0 else " " + word for i, word in enumerate(words)]


def max_tokens_of(body: dict) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tool_results_text(messages: list) -> str:
    """The tool results after the last assistant turn: what the prose answer is about."""
    texts = []
    for message in reversed(messages or []):
        if not isinstance(message, dict) or message.get("role") not in ("tool", "function"):
            break
        texts.append(_text_of(message.get("content")))
    return " ".join(reversed(texts))


def _prose(body: dict, *, index: int) -> list[str]:
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") in ("tool", "function"):
        opening = ["This", "is", "a", "fake", "answer", "from", "the", "tool", "results:"]
        return answer_words(_tool_results_text(messages), max_tokens_of(body), opening=opening)
    opening = None if index == 0 else ["This", "is", "fake", "answer", f"{index + 1}", "to:"]
    return answer_words(last_user_text(messages), max_tokens_of(body), opening=opening)


# --- Tools -----------------------------------------------------------------------------------


def function_tools(tools) -> list[ToolSpec]:
    """The functions among chat completions' ``tools``; other tool types are not called."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise FakeRequestError("'tools' must be an array of tools.", param="tools")
    specs = []
    for position, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise FakeRequestError(
                f"tools[{position}] must be an object with a type.", param="tools"
            )
        if tool["type"] != "function":
            continue
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
            raise FakeRequestError(
                f"tools[{position}].function.name must be 1-64 letters, digits, '_' or '-'.",
                param=f"tools[{position}].function.name",
            )
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise FakeRequestError(
                f"tools[{position}].function.parameters must be a JSON schema object.",
                param=f"tools[{position}].function.parameters",
            )
        specs.append(ToolSpec(name=name, parameters=parameters))
    return specs


@dataclass(frozen=True)
class ToolChoice:
    mode: str  # "none" | "auto" | "required" | "named"
    names: tuple[str, ...] = ()  # the named function, or the allowed ones


def chat_tool_choice(value, tools: list[ToolSpec]) -> ToolChoice:
    """Chat completions' ``tool_choice``, checked against the tools offered."""
    offered = {tool.name for tool in tools}
    if value is None:
        return ToolChoice("auto" if tools else "none")
    if value in ("none", "auto", "required"):
        choice = ToolChoice(value)
    elif isinstance(value, dict) and value.get("type") == "function":
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise FakeRequestError("tool_choice.function.name is required.", param="tool_choice")
        choice = ToolChoice("named", (name,))
    elif isinstance(value, dict) and value.get("type") == "allowed_tools":
        allowed = value.get("allowed_tools") if isinstance(value.get("allowed_tools"), dict) else {}
        mode = allowed.get("mode", "auto")
        names = tuple(
            tool["function"]["name"]
            for tool in allowed.get("tools") or []
            if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
        )
        if mode not in ("auto", "required") or not names:
            raise FakeRequestError(
                "tool_choice.allowed_tools needs a mode (auto or required) and tools.",
                param="tool_choice",
            )
        choice = ToolChoice(mode, names)
    else:
        raise FakeRequestError(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a "
            "named function.",
            param="tool_choice",
        )
    if choice.mode != "none" and not tools:
        raise FakeRequestError(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
            "are specified.",
            param="tool_choice",
        )
    unknown = [name for name in choice.names if name not in offered]
    if unknown:
        raise FakeRequestError(
            f"Invalid value for 'tool_choice': no function named {unknown[0]!r} in 'tools'.",
            param="tool_choice",
        )
    return choice


def _name_words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {word.lower() for word in re.split(r"[^A-Za-z0-9]+", spaced) if len(word) >= 4}


def chosen_tools(
    tools: list[ToolSpec], choice: ToolChoice, *, last_role: str, user_text: str, parallel: bool
) -> list[ToolSpec]:
    """The functions the fake calls, in the order offered; none when it answers in prose."""
    if choice.mode == "none" or not tools:
        return []
    if choice.mode == "auto" and last_role != "user":
        return []  # after a tool result (or an assistant turn) the model answers
    if choice.mode == "named":
        return [tool for tool in tools if tool.name == choice.names[0]][:1]
    candidates = [tool for tool in tools if not choice.names or tool.name in choice.names]
    words = set(re.findall(r"[a-z0-9]+", user_text.lower()))
    mentioned = [tool for tool in candidates if _name_words(tool.name) & words]
    selected = mentioned or candidates[:1]
    return selected if parallel else selected[:1]


def tool_call_id(seed: str, *, choice: int, position: int) -> str:
    digest = hashlib.sha256(f"{seed}:{choice}:{position}".encode()).hexdigest()[:24]
    return f"call_{digest}"


def tool_arguments(tool: ToolSpec) -> str:
    try:
        value = example_for(tool.parameters)
    except (SchemaError, RecursionError) as error:
        raise FakeRequestError(
            f"Invalid schema for function {tool.name!r}: {error}", param="tools"
        ) from None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def argument_pieces(arguments: str) -> list[str]:
    """Arguments as OpenAI streams them: a few characters per chunk."""
    return [
        arguments[i : i + ARGUMENT_PIECE_CHARS]
        for i in range(0, len(arguments), ARGUMENT_PIECE_CHARS)
    ]


# --- Structured output -------------------------------------------------------------------


def _mentions_json(messages: list) -> bool:
    return any(
        "json" in _text_of(message.get("content")).lower()
        for message in messages or []
        if isinstance(message, dict)
    )


@dataclass(frozen=True)
class Structured:
    kind: str  # "json_object" | "json_schema"
    document: str = ""  # json_schema's, built once from the schema


def structured_format(body: dict) -> Structured | None:
    """What ``response_format`` asks for, checked as the real API checks it (whether or
    not this answer turns out to be a document); None for prose."""
    response_format = body.get("response_format")
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        if not _mentions_json(body.get("messages")):
            raise FakeRequestError(
                "'messages' must contain the word 'json' in some form, to use "
                "'response_format' of type 'json_object'.",
                param="messages",
            )
        return Structured("json_object")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise FakeRequestError(
                "response_format.json_schema needs a name and a schema.",
                param="response_format.json_schema",
            )
        schema = spec.get("schema", {"type": "object"})
        if not isinstance(schema, dict | bool):
            raise FakeRequestError(
                "response_format.json_schema.schema must be a JSON schema object.",
                param="response_format.json_schema.schema",
            )
        try:
            value = example_for(schema)
        except (SchemaError, RecursionError) as error:
            raise FakeRequestError(
                f"Invalid schema for response_format {spec['name']!r}: {error}",
                param="response_format",
            ) from None
        return Structured(
            "json_schema", json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        )
    raise FakeRequestError(
        "Invalid value for 'response_format.type': expected 'text', 'json_object' or "
        "'json_schema'.",
        param="response_format.type",
    )


def structured_document(structured: Structured, prose: list[str]) -> str:
    """The JSON document answered for ``response_format``, as compact JSON text."""
    if structured.kind == "json_schema":
        return structured.document
    return json.dumps({"answer": "".join(prose)}, ensure_ascii=False, separators=(",", ":"))


# --- The plan --------------------------------------------------------------------------------


def request_seed(body: dict) -> str:
    return hashlib.sha256(repr(sorted(body.items(), key=str)).encode()).hexdigest()[:24]


def chat_plan(body: dict) -> list[ChoicePlan]:
    """Every choice of the answer to a chat completions request."""
    messages = body.get("messages") or []
    tools = function_tools(body.get("tools"))
    choice = chat_tool_choice(body.get("tool_choice"), tools)
    check_logprobs(body)
    structured = structured_format(body)
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    calls = chosen_tools(
        tools,
        choice,
        last_role=str(last.get("role") or ""),
        user_text=last_user_text(messages),
        parallel=body.get("parallel_tool_calls") is not False,
    )
    arguments = [tool_arguments(tool) for tool in calls]
    n = body.get("n")
    count = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    seed = request_seed(body)
    plans = []
    for index in range(count):
        if calls:
            tool_calls = tuple(
                ToolCall(
                    id=tool_call_id(seed, choice=index, position=position),
                    name=tool.name,
                    arguments=arguments[position],
                )
                for position, tool in enumerate(calls)
            )
            plans.append(ChoicePlan(index, (), tool_calls, "tool_calls"))
            continue
        prose = _prose(body, index=index)
        if structured is not None:
            document = structured_document(structured, prose)
            plans.append(ChoicePlan(index, tuple(_JSON_PIECES.findall(document)), (), "stop"))
        else:
            # "length" only when the answer reached the cap, as an upstream reports it.
            cap = max_tokens_of(body)
            finish = "length" if cap is not None and len(prose) >= cap else "stop"
            plans.append(ChoicePlan(index, tuple(prose), (), finish))
    return plans


def completion_tokens_of(plans: list[ChoicePlan], *, model: str) -> int:
    total = 0
    for plan in plans:
        total += count_tokens(plan.content or "", model=model)
        for call in plan.tool_calls:
            total += count_tokens(call.name, model=model) + count_tokens(
                call.arguments, model=model
            )
    return total


# --- Log probabilities ---------------------------------------------------------------------


def check_logprobs(body: dict) -> None:
    top = body.get("top_logprobs")
    if top is None:
        return
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS:
        raise FakeRequestError(
            f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}.",
            param="top_logprobs",
        )
    if body.get("logprobs") is not True:
        raise FakeRequestError(
            "'logprobs' must be true to use 'top_logprobs'.", param="top_logprobs"
        )


def _token_entry(text: str, probability: float) -> dict:
    return {
        "token": text,
        "logprob": math.log(probability),
        "bytes": list(text.encode("utf-8")),
    }


def _tokens(text: str, tokenizer) -> list[tuple[int, str]]:
    """The text's tokens as (first id, text); a token that is part of a character (an
    emoji's bytes) joins its neighbours until their bytes decode."""
    result, group = [], []
    for token in tokenizer.encode(text):
        group.append(token)
        try:
            result.append((group[0], tokenizer.decode(group)))
        except ValueError:
            continue
        group = []
    return result


def _alternatives(token: int, tokenizer, count: int, taken: str) -> list[str]:
    found: list[str] = []
    candidate = token
    for _attempt in range(count * 4):
        if len(found) >= count:
            break
        candidate = (candidate + _ALTERNATIVE_STRIDE) % 100_000
        try:
            text = tokenizer.decode([candidate])
        except ValueError:
            continue
        if text and text != taken and text not in found:
            found.append(text)
    return found


def logprobs_of(pieces, *, model: str, top: int, start: int = 0) -> list[list[dict]]:
    """For each piece of content, the entries of its tokens; ``start`` is the position of
    the first token in the whole answer."""
    tokenizer = tokenizer_for_model(model)
    position = start
    result = []
    for piece in pieces:
        entries = []
        for token, text in _tokens(piece, tokenizer):
            digest = hashlib.blake2b(f"{token}:{position}".encode(), digest_size=4).digest()
            probability = 0.5 + int.from_bytes(digest, "big") % 490 / 1000  # 0.5 to 0.989
            entry = _token_entry(text, probability)
            listed = [_token_entry(text, probability)]
            rest = 1 - probability
            for rank, other in enumerate(_alternatives(token, tokenizer, top - 1, text), 1):
                listed.append(_token_entry(other, rest * 0.5**rank))
            entry["top_logprobs"] = listed[:top]
            entries.append(entry)
            position += 1
        result.append(entries)
    return result
