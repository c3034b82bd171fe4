import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.masking import Masker, StreamRestorer, mask_body, restore, restore_answer

EMAIL = "jane@example.com"
CARD = "4111 1111 1111 1111"


def _body(*messages):
    return {"model": "gpt-4o", "messages": list(messages)}


def test_same_value_gets_the_same_placeholder_and_different_values_different_ones():
    masker = Masker()
    body = _body({"role": "user", "content": f"{EMAIL}, {EMAIL} and bob@example.org"})
    masked = mask_body(body, masker)
    assert masked["messages"][0]["content"] == "[EMAIL_1], [EMAIL_1] and [EMAIL_2]"
    assert masker.values == {"[EMAIL_1]": EMAIL, "[EMAIL_2]": "bob@example.org"}
    assert dict(masker.counts) == {"EMAIL": 3}


def test_the_clients_body_is_never_mutated():
    body = _body(
        {"role": "user", "content": [{"type": "text", "text": f"card {CARD}"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
    )
    before = copy.deepcopy(body)
    mask_body(body, Masker())
    assert body == before


def test_content_parts_tool_results_and_tool_call_arguments_are_masked():
    body = _body(
        {"role": "user", "content": [{"type": "text", "text": f"mail {EMAIL}"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"email": EMAIL})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": f"card on file: {CARD}"},
    )
    masked = mask_body(body, Masker())
    text = json.dumps(masked)
    assert EMAIL not in text and CARD not in text
    assert json.loads(masked["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {
        "email": "[EMAIL_1]"
    }
    assert masked["messages"][2]["content"] == "card on file: [CREDIT_CARD_1]"


def test_a_placeholder_the_client_wrote_is_never_issued():
    masker = Masker()
    body = _body({"role": "user", "content": f"literal [EMAIL_1] and {EMAIL}"})
    masked = mask_body(body, masker)
    assert masked["messages"][0]["content"] == "literal [EMAIL_1] and [EMAIL_2]"
    assert restore("[EMAIL_1] [EMAIL_2]", masker.values) == f"[EMAIL_1] {EMAIL}"


def test_unknown_and_mangled_placeholders_are_left_as_they_are():
    values = {"[EMAIL_1]": EMAIL}
    assert restore("[EMAIL_9] [EMAIL_1 [email_1] [EMAIL_1]", values) == (
        f"[EMAIL_9] [EMAIL_1 [email_1] {EMAIL}"
    )


def test_the_answer_has_its_values_restored_in_content_and_tool_calls():
    values = {"[EMAIL_1]": EMAIL, "[SECRET_1]": 'a"b\nc'}
    answer = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sent to [EMAIL_1].",
                    "tool_calls": [
                        {
                            "id": "t",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"k": "[SECRET_1]"}'},
                        }
                    ],
                },
            }
        ]
    }
    restored = restore_answer(answer, values)
    message = restored["choices"][0]["message"]
    assert message["content"] == f"Sent to {EMAIL}."
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"k": 'a"b\nc'}
    assert answer["choices"][0]["message"]["content"] == "Sent to [EMAIL_1]."


def _chunk(content, finish=None):
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


def _run_stream(pieces, values):
    restorer = StreamRestorer(values)
    out = []
    for piece in pieces:
        out += restorer.feed(_chunk(piece))
    out += restorer.close()
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in out if c["choices"])


VALUES = {"[EMAIL_1]": EMAIL, "[CREDIT_CARD_1]": CARD}
ANSWER = "Hello [EMAIL_1], your card [CREDIT_CARD_1] is fine; [EMAIL_7] and [x] stay."
EXPECTED = f"Hello {EMAIL}, your card {CARD} is fine; [EMAIL_7] and [x] stay."


def test_a_placeholder_split_across_two_chunks_is_restored():
    assert _run_stream(["Hello [EMAIL", "_1], bye"], VALUES) == f"Hello {EMAIL}, bye"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=12))
def test_a_stream_cut_anywhere_reads_as_the_restored_answer(cuts):
    points = sorted(set(cuts))
    pieces = [ANSWER[a:b] for a, b in zip([0, *points], [*points, len(ANSWER)], strict=True)]
    assert _run_stream(pieces, VALUES) == EXPECTED


def test_text_held_back_is_released_when_the_choice_finishes():
    restorer = StreamRestorer(VALUES)
    first = restorer.feed(_chunk("see [EMAIL_"))
    last = restorer.feed(_chunk("", finish="stop"))
    text = first[0]["choices"][0]["delta"]["content"] + last[0]["choices"][0]["delta"]["content"]
    assert text == "see [EMAIL_"
    assert restorer.close() == []


def test_the_usage_chunk_passes_through_untouched():
    restorer = StreamRestorer(VALUES)
    usage = {"id": "c", "choices": [], "usage": {"prompt_tokens": 3}}
    assert restorer.feed(usage) == [usage]


def test_tool_call_arguments_in_a_stream_are_restored():
    restorer = StreamRestorer(VALUES)
    out = []
    for piece in ['{"to": "[EMA', 'IL_1]"}']:
        chunk = {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]},
                    "finish_reason": None,
                }
            ],
        }
        out += restorer.feed(chunk)
    arguments = "".join(
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in out
    )
    assert json.loads(arguments) == {"to": EMAIL}


def test_the_reasoning_beside_the_answer_is_restored_under_either_name():
    for name in ("reasoning_content", "reasoning"):
        message = {"role": "assistant", "content": "Done.", name: "Writing to [EMAIL_1]."}
        answer = {"choices": [{"index": 0, "message": message}]}
        restored = restore_answer(answer, VALUES)["choices"][0]["message"]
        assert restored[name] == f"Writing to {EMAIL}."
        assert message[name] == "Writing to [EMAIL_1]."  # the upstream's body is unchanged


def _delta_chunk(delta, finish=None):
    return {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=8))
def test_streamed_reasoning_cut_anywhere_reads_as_restored_and_the_answer_too(cuts):
    points = sorted(set(cuts))
    pieces = [ANSWER[a:b] for a, b in zip([0, *points], [*points, len(ANSWER)], strict=True)]
    restorer = StreamRestorer(VALUES)
    out = []
    for piece in pieces:
        out += restorer.feed(_delta_chunk({"reasoning_content": piece}))
    for piece in pieces:
        out += restorer.feed(_delta_chunk({"content": piece}))
    out += restorer.feed(_delta_chunk({}, finish="stop"))
    out += restorer.close()

    def joined(name):
        return "".join(c["choices"][0]["delta"].get(name) or "" for c in out if c["choices"])

    assert joined("reasoning_content") == EXPECTED
    assert joined("content") == EXPECTED


def test_tool_arguments_held_back_at_the_finish_are_released_as_json():
    values = {"[SECRET_1]": 'a"b'}
    restorer = StreamRestorer(values)

    def call_chunk(arguments, finish=None):
        call = {"index": 0, "function": {"arguments": arguments}}
        return _delta_chunk({"tool_calls": [call]}, finish)

    out = restorer.feed(call_chunk('{"k": "[SECRET_1]", "t": "[SEC'))
    # The finish carries no arguments: what was held back ("[SEC") goes out with it.
    out += restorer.feed(_delta_chunk({}, finish="tool_calls"))
    assert restorer.close() == []
    arguments = "".join(
        call["function"]["arguments"]
        for chunk in out
        for call in chunk["choices"][0]["delta"].get("tool_calls") or ()
    )
    assert arguments == '{"k": "a\\"b", "t": "[SEC'


def test_a_stream_that_ends_without_a_finish_releases_tool_arguments_as_json():
    restorer = StreamRestorer({"[SECRET_1]": 'a"b'})
    chunk = _delta_chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"k": "[SEC'}}]})
    out = restorer.feed(chunk)
    out += restorer.feed(
        _delta_chunk({"tool_calls": [{"index": 1, "function": {"arguments": "RET_1"}}]})
    )
    tail = restorer.close()
    assert tail[0]["choices"][0]["delta"] == {
        "tool_calls": [{"index": 1, "function": {"arguments": "[SECRET_1"}}]
    }
    pieces = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in out]
    assert "".join(pieces) + "[SECRET_1" == '{"k": "[SECRET_1'
