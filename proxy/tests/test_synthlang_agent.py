"""Agent context: tool results, tool-call arguments and verbatim repeats across messages."""

from __future__ import annotations

import json

import pytest

from proxy.synthlang import compress_messages
from proxy.synthlang.agent import collapse_repeated_lines, is_file_read, minify_json_document
from proxy.tokens import O200K, count_message_tokens


def _call(call_id: str, name: str, arguments: dict) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        ],
    }


def _result(call_id: str, content: str) -> dict:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


ORDER = {
    "order_id": "LP-2405-911374",
    "total": {"amount": "727.00", "currency": "GBP"},
    "price": 2.50,
    "lines": [{"sku": f"SKU-{n}", "name": "Desk  Oak, 140cm", "qty": n} for n in range(1, 9)],
    "note": "Caf\u00e9 \u2014 leave at the door",
}
PRETTY = json.dumps(ORDER, indent=2).replace('"price": 2.5', '"price": 2.50')
SYSTEM = {"role": "system", "content": "You are the order assistant. Quote order numbers exactly."}


def _compress(messages, **options):
    options.setdefault("level", "low")
    compressed, stats = compress_messages(messages, encoding=O200K, **options)
    assert stats.tokens_after == count_message_tokens(compressed, encoding=O200K)
    return compressed, stats


def test_a_json_tool_result_is_minified_with_its_values_and_key_order_untouched():
    messages = [SYSTEM, _call("c1", "get_order", {"id": "LP"}), _result("c1", PRETTY)]
    compressed, stats = _compress(messages)
    content = compressed[2]["content"]
    assert "\n" not in content and '"price":2.50' in content  # never re-serialised
    assert '"name":"Desk  Oak, 140cm"' in content  # string values keep their spaces
    assert json.loads(content) == json.loads(PRETTY)
    assert list(json.loads(content)) == list(ORDER)
    assert stats.tokens_saved > 0


def test_a_result_that_is_already_compact_comes_back_as_the_same_object():
    compact = json.dumps(ORDER, separators=(",", ":"))
    messages = [SYSTEM, _call("c1", "get_order", {"id": "LP"}), _result("c1", compact)]
    compressed, _stats = _compress(messages)
    assert compressed[2] is messages[2]


def test_a_file_read_keeps_its_bytes_even_when_it_is_json():
    package = json.dumps({"name": "ledger-ui", "scripts": {"build": "vite build"}}, indent=2)
    package += "\n" + "\n".join(f"line {n}" for n in range(40))
    messages = [_call("c1", "read_file", {"path": "package.json"}), _result("c1", package)]
    compressed, _stats = _compress(messages)
    assert compressed[1] is messages[1]
    assert is_file_read({"name": "Read", "arguments": '{"file_path": "/src/a.py"}'})
    assert not is_file_read({"name": "web_search", "arguments": '{"q": "python"}'})


def test_a_result_identical_to_an_earlier_one_becomes_a_reference_to_it():
    page = "Returns: any book within 30 days for a full refund.\n" * 3 + "Gift cards: no refund.\n"
    page = page * 3
    messages = [
        _call("c1", "fetch_url", {"url": "https://shop.example/returns"}),
        _result("c1", page),
        _call("c2", "fetch_url", {"url": "https://shop.example/shipping"}),
        _result("c2", "UK delivery takes 2-4 working days. " * 10),
        _call("c3", "fetch_url", {"url": "https://shop.example/returns"}),
        _result("c3", page),
    ]
    compressed, stats = _compress(messages)
    assert compressed[5]["content"] == ('[same as fetch_url("https://shop.example/returns") above]')
    assert compressed[1]["content"] != compressed[5]["content"]  # the first copy is kept
    assert stats.repeats_removed >= 1


def test_a_reference_names_the_call_when_two_earlier_results_share_a_description():
    first = json.dumps({"status": "RUNNING", "log": ["step"] * 60})
    second = json.dumps({"status": "FAILED", "log": ["step"] * 60})
    messages = [
        _call("c1", "get_job", {"job": "bf-37"}),
        _result("c1", first),
        _call("c2", "get_job", {"job": "bf-37"}),
        _result("c2", second),
        _call("c3", "get_job", {"job": "bf-37"}),
        _result("c3", first),
    ]
    compressed, _stats = _compress(messages)
    assert compressed[5]["content"] == "[same as get_job call c1 above]"


def test_runs_of_identical_log_lines_become_one_line_and_a_count():
    warning = "WARN smtp timeout host=mail.relay.example port=587"
    log = "\n".join(["INFO start", *[warning] * 8, "ERROR giving up on id=7f3e21 after 9 attempts"])
    messages = [_call("c1", "tail_log", {"lines": 40}), _result("c1", log)]
    compressed, _stats = _compress(messages)
    assert compressed[1]["content"] == "\n".join(
        [
            "INFO start",
            warning,
            "[the line above repeats 7 more times]",
            "ERROR giving up on id=7f3e21 after 9 attempts",
        ]
    )


def test_two_identical_lines_are_not_worth_a_note():
    text = "a line that is long enough\na line that is long enough\nend"
    assert collapse_repeated_lines(text, encoding=O200K) == text


def test_lines_repeating_an_earlier_result_are_referenced():
    warnings = [f"npm WARN deprecated package-{n}@1.0.{n}: no longer supported" for n in range(8)]
    first = "\n".join(["v22.2.0", *warnings, "added 812 packages"])
    second = "\n".join(["ERESOLVE unable to resolve dependency tree", *warnings, "exit 1"])
    messages = [
        _call("c1", "run_shell", {"cmd": "npm install"}),
        _result("c1", first),
        _call("c2", "run_shell", {"cmd": "npm install --legacy-peer-deps"}),
        _result("c2", second),
    ]
    compressed, _stats = _compress(messages)
    assert compressed[1] is messages[1]
    assert compressed[3]["content"] == (
        "ERESOLVE unable to resolve dependency tree\n"
        '[8 lines repeated from run_shell("npm install") above, from '
        '"npm WARN deprecated package-0@1.0.0: no…"]\n'
        "exit 1"
    )


def test_a_system_prompt_re_sent_inside_a_user_turn_becomes_a_reference():
    system = "You are Atlas, the IT helpdesk agent.\n\n" + "- Verify the caller first.\n" * 12
    question = "It locked again after 2 minutes, and the VPN won't connect either."
    messages = [
        {"role": "system", "content": system.strip()},
        {"role": "user", "content": "my account is locked"},
        {"role": "assistant", "content": "Done: your account is unlocked."},
        {"role": "user", "content": f"<reminder>\n{system}</reminder>\n\n{question}"},
    ]
    compressed, _stats = _compress(messages)
    assert compressed[3]["content"] == (
        f"<reminder>\n[same as the system message above]\n</reminder>\n\n{question}"
    )
    assert compressed[0] is messages[0]


def test_tool_output_pasted_into_a_user_turn_becomes_a_reference():
    output = "\n".join(f"tests/test_vat.py::test_{n} PASSED" for n in range(20))
    messages = [
        _call("c1", "run_tests", {"path": "tests/"}),
        _result("c1", output),
        {"role": "user", "content": f"Here's what I get locally:\n\n{output}\n\nSame thing?"},
    ]
    compressed, _stats = _compress(messages)
    assert compressed[2]["content"] == (
        'Here\'s what I get locally:\n\n[same as run_tests("tests/") above]\n\nSame thing?'
    )


def test_tool_call_arguments_are_minified_and_their_values_kept():
    arguments = json.dumps({"query": "SELECT  a,  b FROM t", "limit": 20}, indent=2)
    message = _call("c1", "sql", {})
    message["tool_calls"][0]["function"]["arguments"] = arguments
    compressed, _stats = _compress([message])
    minified = compressed[0]["tool_calls"][0]["function"]["arguments"]
    assert minified == '{"query":"SELECT  a,  b FROM t","limit":20}'


def test_with_the_setting_off_tool_results_and_arguments_go_as_sent():
    messages = [SYSTEM, _call("c1", "get_order", {"id": "LP"}), _result("c1", PRETTY)]
    compressed, stats = _compress(messages, tool_results=False)
    assert compressed == messages
    assert stats.tokens_saved == 0


def test_tool_results_inside_content_parts_are_compressed_too():
    messages = [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "tu_1", "name": "get_order", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "content": PRETTY},
                {"type": "text", "text": "Is it late?"},
            ],
        },
    ]
    compressed, stats = _compress(messages)
    part = compressed[1]["content"][0]
    assert json.loads(part["content"]) == ORDER and "\n" not in part["content"]
    assert compressed[1]["content"][1] == messages[1]["content"][1]
    assert stats.tokens_saved > 0


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_the_earlier_form_of_a_conversation_does_not_change_when_it_grows(level):
    messages = [
        SYSTEM,
        {"role": "user", "content": "Where is my desk? " * 20},
        _call("c1", "get_order", {"id": "LP"}),
        _result("c1", PRETTY),
        {"role": "assistant", "content": "It is in transit."},
        {"role": "user", "content": "Check again please. " * 20},
        _call("c2", "get_order", {"id": "LP"}),
        _result("c2", PRETTY),
    ]
    for length in range(1, len(messages)):
        shorter, _ = _compress(messages[:length], level=level)
        longer, _ = _compress(messages[: length + 1], level=level)
        assert json.dumps(shorter) == json.dumps(longer[:length])
    full, _ = _compress(messages, level=level)
    assert full[7]["content"] == '[same as get_order("LP") above]'


def test_minify_json_document_refuses_text_that_is_not_one_json_value():
    assert minify_json_document('{"a": 1} trailing') is None
    assert minify_json_document("not json") is None
    assert minify_json_document('[1, "a  b"]') == '[1,"a  b"]'


def test_a_repeat_of_one_of_several_user_messages_says_which_one():
    first = "The first brief for the campaign.\n" + "Target: students in Leeds. " * 12
    second = "The second brief for the campaign.\n" + "Target: retirees in York. " * 12
    messages = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": second},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": f"Compare with this one again:\n{first.strip()}"},
    ]
    compressed, _stats = _compress(messages)
    assert compressed[4]["content"] == (
        "Compare with this one again:\n"
        '[same as the user message that starts "The first brief for the campaign." above]'
    )
