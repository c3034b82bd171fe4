"""SynthLang engine behaviour on hand-written prompts (none of them from the dev set)."""

from __future__ import annotations

import json

import pytest

from proxy.synthlang import (
    CompressionLevelError,
    TransportDecodeError,
    compress_messages,
    compress_text,
    pack,
    unpack,
)
from proxy.synthlang.rules import SYMBOL_PHRASES, _saves_tokens, word_rules
from proxy.tokens import CL100K, O200K, count_message_tokens, count_tokens

CHATTY_REQUEST = (
    "Hello there! I hope you're doing well this week. I was wondering if you could possibly "
    "help me out with something. Basically, our team at Larkspur Analytics is really trying to "
    "migrate the nightly export job to Airflow, and in order to do that we are going to need a "
    "short checklist. Due to the fact that the job touches the billing database, please make "
    "sure that the checklist mentions backups. Do not suggest any paid tools. Thank you so much "
    "in advance!"
)

CODE_REQUEST = (
    "Please fix this function, it is really slow:   \n\n\n\n"
    "```python\n"
    "def total(rows):\n"
    "    result = 0   \n"
    "    for row in rows:\n"
    "        result += row['amount']\n"
    "    return result\n"
    "```\n"
    "Keep the name `total` unchanged."
)


def test_off_returns_the_text_unchanged_with_its_token_count():
    result = compress_text(CHATTY_REQUEST, level="off", model="gpt-4o")
    assert result.text == CHATTY_REQUEST
    assert (
        result.tokens_before == result.tokens_after == count_tokens(CHATTY_REQUEST, model="gpt-4o")
    )


def test_unknown_level_is_rejected():
    with pytest.raises(CompressionLevelError):
        compress_text("hello", level="extreme", model="gpt-4o")


def test_token_counts_are_those_of_the_target_models_tokenizer():
    for model, encoding in (("gpt-4", CL100K), ("gpt-4o", O200K)):
        result = compress_text(CHATTY_REQUEST, level="medium", model=model)
        assert result.encoding == encoding
        assert result.tokens_before == count_tokens(CHATTY_REQUEST, encoding=encoding)
        assert result.tokens_after == count_tokens(result.text, encoding=encoding)
        assert result.tokens_saved == result.tokens_before - result.tokens_after > 0


def test_low_keeps_code_byte_for_byte_and_tidies_the_prose_around_it():
    result = compress_text(CODE_REQUEST, level="low", model="gpt-4o")
    code = CODE_REQUEST[CODE_REQUEST.index("```python") : CODE_REQUEST.rindex("```") + 3]
    assert code in result.text
    assert "slow:\n\n```" in result.text


def test_low_minifies_embedded_json_without_changing_its_values():
    payload = {"name": "Ada  Lovelace", "ids": [1, 2.50, 3], "nested": {"ok": True}}
    text = "Validate this record:\n" + json.dumps(payload, indent=4) + "\nReturn errors only."
    result = compress_text(text, level="low", model="gpt-4o")
    assert '{"name":"Ada  Lovelace","ids":[1,2.5,3],"nested":{"ok":true}}' in result.text
    assert result.tokens_after < result.tokens_before


def test_low_leaves_json_inside_a_code_fence_alone():
    fenced = 'Format this:\n```json\n{\n  "a": 1\n}\n```'
    assert compress_text(fenced, level="low", model="gpt-4o").text == fenced


def test_medium_removes_greetings_thanks_and_request_framing():
    result = compress_text(CHATTY_REQUEST, level="medium", model="gpt-4o").text
    assert "Hello there" not in result
    assert "I hope you're doing well" not in result
    assert "I was wondering" not in result
    assert "Thank you" not in result
    assert "Basically" not in result


def test_medium_rewrites_verbose_phrases_to_concise_ones():
    result = compress_text(CHATTY_REQUEST, level="medium", model="gpt-4o").text
    assert "in order to" not in result
    assert "Due to the fact that" not in result
    assert "Because job touches billing database, ensure checklist mentions backups." in result


def test_negations_survive_medium_compression():
    result = compress_text(CHATTY_REQUEST, level="medium", model="gpt-4o").text
    assert "Do not suggest any paid tools." in result


def test_conditions_and_bounds_are_kept_verbatim():
    text = (
        "Basically, summarise the log. Only report errors if they really repeat at least "
        "3 times, unless the service is actually down. Never include really long stack traces."
    )
    result = compress_text(text, level="high", model="gpt-4o").text
    assert "Only report errors if they really repeat at least 3 times" in result
    assert "unless the service is actually down." in result
    assert "Never include really long stack traces." in result
    assert not result.startswith("Basically")


def test_literals_survive_every_level():
    text = (
        "Hi! Could you please email jane.doe@example.org the report from "
        'https://intranet.example.com/reports?id=42 and say "very urgent, basically today". '
        "It is really 3.5 kg and costs $1,299.00 per unit in Q3. Run `make really-clean` first."
    )
    literals = [
        "jane.doe@example.org",
        "https://intranet.example.com/reports?id=42",
        '"very urgent, basically today"',
        "3.5 kg",
        "$1,299.00",
        "`make really-clean`",
        "Q3",
    ]
    for level in ("low", "medium", "high"):
        result = compress_text(text, level=level, model="gpt-4o").text
        for literal in literals:
            assert literal in result, (level, literal)


def test_noun_uses_of_kind_of_are_kept_while_hedges_go():
    text = "I kind of need a fix. This kind of error happens when the cache is cold and stale."
    result = compress_text(text, level="medium", model="gpt-4o").text
    assert "I need a fix." in result
    assert "This kind of error" in result


def test_a_result_never_has_more_tokens_than_its_input():
    samples = [
        CHATTY_REQUEST,
        CODE_REQUEST,
        "ok",
        "Please.",
        "so, well, basically",
        "   indented line   \n\n\n\ntrailing   ",
        "Ünïcödé — “quotes” «and» 「brackets」 with really very fillers.",
    ]
    for text in samples:
        for level in ("low", "medium", "high"):
            result = compress_text(text, level=level, model="gpt-4o")
            assert result.tokens_after <= result.tokens_before
            if result.tokens_after == result.tokens_before:
                assert result.text == text


def test_short_plain_requests_are_left_alone():
    text = "Convert 5 miles to kilometres and round to two decimals."
    assert compress_text(text, level="medium", model="gpt-4o").text == text


@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_symbol_rules_apply_only_where_they_save_tokens(encoding):
    rules = word_rules(encoding, "high").replacements
    for phrase, symbol in SYMBOL_PHRASES.items():
        if phrase in rules and rules[phrase] == symbol:
            assert count_tokens(f" {symbol} x", encoding=encoding) < count_tokens(
                f" {phrase} x", encoding=encoding
            )
        else:
            assert not _saves_tokens(phrase, symbol, encoding)
    # "and" -> "&" costs the same on both encodings, so it is never applied.
    assert "and" not in rules


def test_high_saves_at_least_as_much_as_medium():
    text = CHATTY_REQUEST + " The cache miss leads to a slow page and then a retry."
    medium = compress_text(text, level="medium", model="gpt-4")
    high = compress_text(text, level="high", model="gpt-4")
    assert high.tokens_after <= medium.tokens_after


def test_compress_messages_leaves_assistant_and_tool_turns_alone():
    messages = [
        {"role": "system", "content": "You are really very helpful. Please be concise."},
        {"role": "user", "content": CHATTY_REQUEST},
        {
            "role": "assistant",
            "content": "Basically, I would really like to help you in order to migrate.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "really  basic"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Basically   nothing found."},
    ]
    original = json.loads(json.dumps(messages))
    compressed, stats = compress_messages(messages, level="medium", model="gpt-4o")
    assert messages == original, "input must not be mutated"
    assert compressed[2] == messages[2]
    assert compressed[3] == messages[3]
    assert compressed[1]["content"] != messages[1]["content"]
    assert stats.tokens_before == count_message_tokens(messages, model="gpt-4o")
    assert stats.tokens_after == count_message_tokens(compressed, model="gpt-4o")
    assert stats.tokens_saved > 0
    assert stats.messages_changed == 2


def test_roles_to_compress_are_configurable():
    messages = [
        {"role": "system", "content": "Basically, you are really a very helpful assistant."},
        {"role": "user", "content": "Basically, what is really the capital of France?"},
    ]
    compressed, _stats = compress_messages(
        messages, level="medium", model="gpt-4o", roles=("system",)
    )
    assert compressed[1] == messages[1]
    assert compressed[0] != messages[0]


def test_verbatim_repeats_across_turns_are_removed_at_low():
    repeated = "The export job runs at 02:00 UTC and writes to the billing replica."
    messages = [
        {"role": "user", "content": f"{repeated} It failed last night."},
        {"role": "assistant", "content": "Which error did it log?"},
        {"role": "user", "content": f"{repeated} The error is a timeout."},
    ]
    compressed, stats = compress_messages(messages, level="low", model="gpt-4o")
    assert compressed[0] == messages[0]
    assert compressed[2]["content"] == "The error is a timeout."
    assert stats.repeats_removed == 1
    assert stats.tokens_after < stats.tokens_before


def test_text_parts_are_compressed_and_image_parts_kept():
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": CHATTY_REQUEST}, image]},
    ]
    compressed, stats = compress_messages(messages, level="medium", model="gpt-4o")
    parts = compressed[0]["content"]
    assert parts[1] == image
    assert parts[0]["type"] == "text"
    assert len(parts[0]["text"]) < len(CHATTY_REQUEST)
    assert stats.tokens_saved > 0


def test_off_level_returns_messages_untouched():
    messages = [{"role": "user", "content": CHATTY_REQUEST}]
    compressed, stats = compress_messages(messages, level="off", model="gpt-4o")
    assert compressed == messages
    assert stats.tokens_saved == 0


def test_pack_round_trips_and_is_deterministic():
    text = "Grüße 👋\n\tcode   with  spaces\r\n" * 50
    packed = pack(text)
    assert packed.startswith("slz1:")
    assert unpack(packed) == text
    assert pack(text) == packed


@pytest.mark.parametrize(
    "bad",
    ["", "hello", "slz1:not base64!!", "slz1:aGVsbG8=", "slz1:" + pack("x")[5:-4]],
)
def test_unpack_rejects_anything_that_is_not_a_packed_string(bad):
    with pytest.raises(TransportDecodeError):
        unpack(bad)
    assert issubclass(TransportDecodeError, ValueError)


def test_held_out_verbose_requests_shrink_by_a_fifth_with_facts_kept():
    requests = {
        (
            "Hey! I hope your week is going great. So, I was hoping you could help me out with "
            "a small thing. I'm organising a team offsite for 14 people in Porto on May 9, 2026, "
            "and I would really appreciate it if you could put together a simple agenda with a "
            "lunch break at 12:30. Honestly it doesn't need to be fancy at all. Thanks so much, "
            "I really appreciate it!"
        ): ["14 people", "Porto", "May 9, 2026", "12:30", "doesn't need to be fancy"],
        (
            "Good morning! Sorry in advance for the long message. I'm reaching out because our "
            "landlord, Mr. Tomasz Wojcik, basically wants to raise the rent by 12% starting "
            "August 1. If you could draft a polite reply asking him to keep it at 5%, that would "
            "be absolutely wonderful. Any help would be greatly appreciated!"
        ): ["Tomasz Wojcik", "12%", "August 1", "5%", "polite reply"],
    }
    for text, facts in requests.items():
        result = compress_text(text, level="medium", model="gpt-4o")
        for fact in facts:
            assert fact in result.text, fact
        assert result.tokens_saved / result.tokens_before >= 0.20, result.text


def test_medium_rewrites_instruction_scaffolding_to_imperatives():
    text = (
        "You are Quill, the writing assistant for the Harbour Press editorial team. You should "
        "always make sure to respond politely. Your job is to review the drafts that are "
        "submitted by the authors and to explain that the house style prefers short sentences. "
        "It is important that you cite the page of the style guide, the chapter, and the rule."
    )
    result = compress_text(text, level="medium", model="gpt-4o").text
    assert result.startswith("You are Quill, writing assistant for ")
    assert "Always respond politely." in result
    assert "Review drafts submitted by authors" in result
    assert "to explain house style prefers short sentences" in result
    assert "Cite page of style guide, chapter and rule." in result


def test_negation_and_condition_clauses_keep_their_articles():
    text = (
        "You help the members of the club with the booking of the courts. Never reveal the name "
        "of a member to another member. If a member asks for a refund, say that the manager "
        "decides. Offer a callback when the member has asked for a human twice. Round the fee to "
        "the nearest dollar and use the table below for the prices."
    )
    result = compress_text(text, level="medium", model="gpt-4o").text
    assert result.startswith("Help members of club with booking of courts.")
    assert "Never reveal the name of a member to another member." in result
    assert "If a member asks for a refund" in result
    assert "say manager decides" in result
    assert "when the member has asked for a human twice" in result
    assert "Round the fee to the nearest dollar" in result


def test_telegraphic_rules_leave_other_languages_and_short_prompts_alone():
    spanish = (
        "Por favor, resuma el informe de la reunión a las 10:30 en la sala 4 y envíelo a todo el "
        "equipo de ventas antes del viernes. El informe debe tener una lista de las decisiones, "
        "una lista de las tareas pendientes y una nota sobre el presupuesto del próximo año."
    )
    assert compress_text(spanish, level="high", model="gpt-4o").text == spanish
    short = "In Git, how do I undo the last commit but keep the changes in the index?"
    assert compress_text(short, level="medium", model="gpt-4o").text == short


def test_worked_examples_are_kept_verbatim():
    text = (
        "Answer in the format of the examples below, and show the working for the reader.\n\n"
        "Q: A crate holds 12 jars and the shop has 5 crates. How many jars are there?\n"
        "A: The shop has 5 x 12 = 60 jars. The answer is 60.\n\n"
        "Q: A van carries 9 boxes on each of the 4 trips that it makes. How many boxes?\nA:"
    )
    result = compress_text(text, level="medium", model="gpt-4o").text
    for line in text.splitlines()[2:]:
        assert line in result


def test_removed_opening_politeness_leaves_no_leading_space():
    result = compress_text(
        "Please could you explain, in a couple of sentences, what a semantic cache is?",
        level="medium",
        model="gpt-4o",
    )
    assert result.tokens_saved > 0
    assert result.text.startswith("Could you explain")


def test_a_repeated_system_prompt_is_rewritten_once(monkeypatch):
    from proxy.synthlang import engine

    engine._shorter_rewrite_remembered.cache_clear()
    rewritten = []
    real = engine._shorter_rewrite

    def counting(text, **kwargs):
        rewritten.append(text)
        return real(text, **kwargs)

    monkeypatch.setattr(engine, "_shorter_rewrite", counting)
    system = "You are basically a really very helpful assistant for our travel agency."
    first_user, second_user = "Please could you list 3 hotels in Oslo?", "And 2 in Bergen?"
    first, _ = compress_messages(
        [{"role": "system", "content": system}, {"role": "user", "content": first_user}],
        level="medium",
        model="gpt-4o",
    )
    second, _ = compress_messages(
        [{"role": "system", "content": system}, {"role": "user", "content": second_user}],
        level="medium",
        model="gpt-4o",
    )
    assert rewritten == [system, first_user, second_user]
    assert first[0] == second[0]
    assert first[0]["content"] != system  # the remembered rewrite is the compressed one


def test_ceiling_keeps_only_what_it_is_told_and_leaves_assistant_turns_whole():
    from proxy.synthlang.evaluation import OVERALL, ceiling_report

    assistant = "Sure, here is a long answer that nobody compresses by default, word for word."
    items = [
        {
            "id": "one",
            "kind": "demo",
            "messages": [
                {"role": "user", "content": "Hello there friend, please never call after 9 pm."},
                {"role": "assistant", "content": assistant},
                {"role": "user", "content": "Thanks, and book Oslo for 3 nights."},
            ],
            "must_keep": ["after 9 pm", "Oslo", "3 nights"],
        }
    ]
    ceilings = ceiling_report(items, encoding=O200K)
    kept_only = [
        {"role": "user", "content": "after 9 pm"},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": "Oslo 3 nights"},
    ]
    before = count_message_tokens(items[0]["messages"], encoding=O200K)
    after = count_message_tokens(kept_only, encoding=O200K)
    assert ceilings["demo"][1] == pytest.approx((before - after) / before)
    assert ceilings[OVERALL] == ceilings["demo"]
    assert 0 < ceilings["demo"][0] < ceilings["demo"][1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A request framed as politeness keeps its request, now opening the sentence.
        (
            "Summary below.\n\nIf you could draft a reply to the customer, I would be grateful.",
            "\n\nDraft a reply to the customer",
        ),
        (
            "It is late. And if you could keep it short, that would be wonderful.",
            "It is late. Keep it short",
        ),
        # An opener removed at a line start leaves neither its space nor a lowercase letter.
        (
            "Summary below.\n\nFrom what I can see on my end, the parcel is in Lyon.",
            "\n\nThe parcel is in Lyon.",
        ),
    ],
)
def test_what_is_left_of_a_removed_opener_starts_its_sentence_properly(text, expected):
    assert expected in compress_text(text, level="medium", encoding=O200K).text
