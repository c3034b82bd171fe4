"""Property-based checks on whole conversations, at every level and on both tokenizers:

- prefix stability: the compressed form of turns 1..n is the same bytes whether the request
  carries turns 1..n or 1..n+1 (the provider's prompt cache keeps hitting);
- no level empties a message that had text;
- quoted or fenced material in a system or user turn survives byte for byte.
"""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.synthlang import compress_messages
from proxy.tokens import CL100K, O200K

LEVELS = ("low", "medium", "high")
_ENGINE_MARKS_RE = re.compile("[\ufffe\uffff\U000f0000-\U0010fffd]")
ENCODINGS = (CL100K, O200K)

# Prose full of what the word rules remove, so they fire next to the material.
SENTENCES = [
    "Hi there! I was wondering if you could please help me with this.",
    "Basically, the team needs it in order to plan the next release.",
    "Thanks so much in advance!",
    "Please make sure that the summary is short and that it is really clear.",
    "Due to the fact that the report is late, we need it by Friday.",
    "Do not change any of the figures, and never round the totals.",
    "If the customer asks for a refund, say that the billing team decides.",
    "I hope you are having a lovely day.",
    "You should always answer in a friendly and very concise way.",
    "The first rule that matches decides the queue, and the second one is not checked.",
    "So, honestly, I am not sure what the best approach would be here.",
    "Hello!",
]
WORDS = st.sampled_from(["the", "a", "report", "really", "draft", "basically", "of", "very"])
inner = st.lists(WORDS, min_size=2, max_size=8).map(" ".join)
quoted = st.one_of(
    inner.map(lambda text: f'"{text}, and the rest."'),
    inner.map(lambda text: f"“{text}”"),
    st.tuples(inner, inner).map(lambda pair: f'"{pair[0]},\nthe {pair[1]}."'),
    inner.map(lambda text: f"«{text}»"),
)
fenced = st.tuples(inner, st.sampled_from(["", "python", "text"])).map(
    lambda pair: f"```{pair[1]}\nThe  {pair[0]}   really\n    indented: {{ 'a':  1 }}\n```"
)
material = st.one_of(quoted, fenced)
prose = st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=5).map(" ".join)


@st.composite
def prose_turn(draw):
    """A system or user text: prose with material between it; returns (text, material)."""
    pieces = draw(st.lists(material, min_size=0, max_size=3))
    parts = [draw(prose)]
    for piece in pieces:
        parts.append(piece)
        parts.append(draw(prose))
    separators = draw(st.lists(st.sampled_from([" ", "\n", "\n\n", ":\n"]), min_size=len(parts)))
    text = "".join(part + separator for part, separator in zip(parts, separators, strict=False))
    return text.strip(), pieces


def _pretty_json(draw) -> str:
    keys = draw(st.lists(st.sampled_from(["id", "name", "total", "status", "items"]), min_size=1))
    value = {key: draw(st.one_of(st.integers(), inner, st.just(2.50))) for key in keys}
    value["rows"] = [{"sku": f"SKU-{n}", "qty": n} for n in range(draw(st.integers(1, 8)))]
    return json.dumps(value, indent=draw(st.sampled_from([2, 4])))


def _log(draw) -> str:
    lines = draw(st.lists(st.sampled_from(SENTENCES + ["WARN retry", "ok"]), min_size=1))
    repeat = draw(st.integers(1, 6))
    return "\n".join(lines + ["ERROR the upstream timed out after 30 s"] * repeat)


@st.composite
def conversations(draw):
    """System, user, assistant tool calls and tool results (some repeating earlier ones)."""
    system, _ = draw(prose_turn())
    messages = [{"role": "system", "content": system}]
    results = []
    for turn in range(draw(st.integers(1, 4))):
        text, _ = draw(prose_turn())
        messages.append({"role": "user", "content": text})
        for call in range(draw(st.integers(0, 2))):
            call_id = f"call_{turn}_{call}"
            path = draw(st.sampled_from(["", "src/app.py"]))
            arguments = {"path": path} if path else {"q": draw(inner)}
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "lookup", "arguments": json.dumps(arguments)},
                        }
                    ],
                }
            )
            if results and draw(st.booleans()):
                result = draw(st.sampled_from(results))
            else:
                result = draw(st.sampled_from([_pretty_json, _log]))(draw)
            results.append(result)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
        messages.append({"role": "assistant", "content": draw(prose)})
    return messages


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.sampled_from(LEVELS), st.sampled_from(ENCODINGS))
def test_compressed_turns_are_byte_stable_when_the_conversation_grows(messages, level, encoding):
    full, _ = compress_messages(messages, level=level, encoding=encoding)
    for length in range(1, len(messages)):
        prefix, _ = compress_messages(messages[:length], level=level, encoding=encoding)
        assert json.dumps(prefix) == json.dumps(full[:length]), (level, length)


def _texts(message: dict) -> list[str]:
    texts = []
    if isinstance(message.get("content"), str):
        texts.append(message["content"])
    for call in message.get("tool_calls") or ():
        texts.append(call["function"]["arguments"])
    return texts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations(), st.sampled_from(LEVELS), st.sampled_from(ENCODINGS))
def test_no_level_empties_a_message_that_had_text(messages, level, encoding):
    compressed, _ = compress_messages(messages, level=level, encoding=encoding)
    assert len(compressed) == len(messages)
    for before, after in zip(messages, compressed, strict=True):
        for original, result in zip(_texts(before), _texts(after), strict=True):
            if original.strip():
                assert result.strip(), (level, original)
            # No working mark or placeholder the engine uses is ever left behind.
            assert not _ENGINE_MARKS_RE.search(result), (level, result)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(prose_turn(), min_size=1, max_size=3),
    st.sampled_from(LEVELS),
    st.sampled_from(ENCODINGS),
    st.sampled_from(["system", "user"]),
)
def test_quoted_and_fenced_material_survives_byte_for_byte(turns, level, encoding, first_role):
    # Each turn is its own text: a turn repeating an earlier one verbatim may become a
    # reference to it (test_synthlang_agent covers that), and its material is then above.
    messages = []
    for index, (text, _pieces) in enumerate(turns):
        role = first_role if index == 0 else "user"
        messages.append({"role": role, "content": f"Turn {index}. {text}"})
    compressed, _ = compress_messages(messages, level=level, encoding=encoding)
    for (_text, pieces), after in zip(turns, compressed, strict=True):
        for piece in pieces:
            assert piece in after["content"], (level, piece, after["content"])
