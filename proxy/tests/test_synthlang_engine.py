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
    "Please fix this function, it is really slow and I need it for the nightly export job that "
    "the billing team runs, because the job now takes almost an hour and it blocks the backups.   "
    "\n\n\n\n"
    "```python\n"
    "def total(rows):\n"
    "    result = 0   \n"
    "    for row in rows:\n"
    "        result += row['amount']\n"
    "    return result\n"
    "```\n"
    "Keep the name `total` unchanged."
)
SYSTEM_PROMPT = (
    "You are Quill, the writing assistant for the Harbour Press editorial team. You should "
    "always make sure to respond politely. Your job is to review the drafts that are submitted "
    "by the authors and to explain that the house style prefers short sentences. In order to "
    "keep answers short, basically use at most 3 bullet points. Apply the rules in the order "
    "given: the first rule that matches decides the answer."
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


@pytest.mark.parametrize("greeting", ["Hello!", "Thanks!", "Hi there!", "Good morning!", "Hi"])
@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_a_greeting_is_never_emptied_or_changed(greeting, level):
    assert compress_text(greeting, level=level, model="gpt-4o").text == greeting
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": greeting}]
    compressed, _stats = compress_messages(messages, level=level, model="gpt-4o")
    assert compressed[1] is messages[1]


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_a_request_of_short_messages_goes_upstream_byte_identical(level):
    messages = [
        {"role": "system", "content": "You are a helpful assistant.  Be brief.  "},
        {"role": "user", "content": "Hello!   Could you please basically tell me the time?"},
        {"role": "assistant", "content": "It is 10:30."},
        {"role": "user", "content": "Thanks so much!"},
    ]
    compressed, stats = compress_messages(messages, level=level, model="gpt-4o")
    assert json.dumps(compressed) == json.dumps(messages)
    assert stats.tokens_saved == 0


def test_low_changes_no_word_and_keeps_code_byte_for_byte():
    result = compress_text(CODE_REQUEST, level="low", model="gpt-4o")
    code = CODE_REQUEST[CODE_REQUEST.index("```python") : CODE_REQUEST.rindex("```") + 3]
    assert code in result.text
    # Spaces ending the request and the run of blank lines go; every word stays.
    assert "the backups.\n\n```python" in result.text
    assert result.text.split() == CODE_REQUEST.split()


def test_low_minifies_json_in_a_system_prompt_without_changing_its_values():
    tools = [{"name": "get_weather", "unit": {"enum": ["celsius", "fahrenheit"]}, "max": 2.50}]
    pretty = json.dumps(tools, indent=4).replace("2.5", "2.50")
    system = (
        "You are the travel concierge of the Harbour Hotel. You can call the tools below when "
        "you need live data, and you answer directly when you do not.\n\n"
        f"Tools:\n{pretty}"
    )
    compressed, stats = compress_messages(
        [{"role": "system", "content": system}], level="low", model="gpt-4o"
    )
    assert compressed[0]["content"].endswith(
        '[{"name":"get_weather","unit":{"enum":["celsius","fahrenheit"]},"max":2.50}]'
    )
    assert stats.tokens_saved > 0


def test_json_a_user_supplies_and_json_in_a_fence_stay_as_written():
    record = json.dumps({"name": "Ada  Lovelace", "ids": [1, 2, 3]}, indent=4)
    for text in (
        f"Validate this record and list every problem you find in it, one per line:\n{record}",
        "Format this JSON with four spaces, as our style guide asks for every file:\n"
        f"```json\n{record}\n```",
    ):
        assert compress_text(text * 2, level="high", model="gpt-4o").text == text * 2


def test_medium_rewords_instruction_prose_and_keeps_every_word_it_does_not_remove():
    result = compress_text(CHATTY_REQUEST, level="medium", model="gpt-4o").text
    assert "I was wondering if you could possibly" not in result
    assert "Basically" not in result
    assert "in order to" not in result
    assert "Due to the fact that" not in result
    # Nothing is re-capitalised: what is left is the user's own words.
    assert "help with something. our team at Larkspur Analytics" in result
    assert "Because the job touches the billing database" in result


def test_medium_never_removes_a_whole_sentence():
    result = compress_text(CHATTY_REQUEST, level="medium", model="gpt-4o").text
    assert result.startswith("Hello there! I hope you're doing well this week.")
    assert result.endswith("Thank you so much in advance!")


def test_high_removes_courtesy_sentences_and_writes_telegraphically():
    result = compress_text(CHATTY_REQUEST, level="high", model="gpt-4o").text
    assert "Hello there" not in result and "Thank you" not in result
    assert "migrate nightly export job" in result  # articles dropped
    assert "Do not suggest any paid tools." in result


def test_negations_conditions_and_bounds_survive_every_level():
    text = (
        "Summarise the log for the on-call engineer in a short and calm paragraph, please. "
        "Only report errors if they repeat at least 3 times, unless the service is actually "
        "down. Never include really long stack traces, and do not guess at the cause."
    )
    for level in ("low", "medium", "high"):
        result = compress_text(text, level=level, model="gpt-4o").text
        assert "Only report errors if they repeat at least 3 times" in result
        assert "unless the service is actually down." in result
        assert "Never include really long stack traces, and do not guess at the cause." in result


def test_rule_statements_keep_their_articles_below_high():
    for level in ("low", "medium"):
        result = compress_text(SYSTEM_PROMPT, level=level, model="gpt-4o").text
        assert "the first rule that matches decides the answer" in result
        assert "You are Quill, the writing assistant for the Harbour Press" in result
    medium = compress_text(SYSTEM_PROMPT, level="medium", model="gpt-4o").text
    # "basically" stands in a clause with a bound ("at most"), which is kept as written.
    assert "To keep answers short, basically use at most 3 bullet points." in medium


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_material_the_user_supplies_is_never_changed(level):
    draft = (
        "The annual report was published on the 14th of march. It shows that the company has "
        "grown it's revenue by a third, and that the the board expects a similar result."
    )
    citation = "Brandt, L., Mensah, K., Ruiz, P., and Zhao, Y. (2019). A survey of burnout."
    table = "Stop              Depart   Arrive\nKingsbridge       07:12    -"
    requests = [
        f"Please proofread the paragraph below, basically fixing the spelling only.\n\n{draft}",
        "Hi! I was wondering if you could please make this email a bit warmer for me, in order "
        f"to win the client back.\n\nDraft:\n{draft}",
        f"Could you please format this reference in APA style, really quickly: {citation}",
        f"I would really like you to translate the headers and keep the layout:\n{table}",
        f'Tell me whether the tone is right, basically, in order to send it: "{draft}"',
    ]
    for text in requests:
        result = compress_text(text, level=level, model="gpt-4o").text
        for material in (draft, citation, table):
            if material in text:
                assert material in result, (level, text)


def test_a_system_prompt_that_says_user_turns_are_the_input_keeps_them_whole():
    messages = [
        {"role": "system", "content": "Translate the user's message into French."},
        {"role": "user", "content": CHATTY_REQUEST},
    ]
    compressed, _stats = compress_messages(messages, level="high", model="gpt-4o")
    assert compressed[1] is messages[1]


def test_literals_survive_every_level():
    text = (
        "Hi! Could you please email jane.doe@example.org the report from "
        'https://intranet.example.com/reports?id=42 and say "very urgent, basically today". '
        "It is really 3.5 kg and costs $1,299.00 per unit in Q3. Run `make really-clean` first, "
        "and in order to save time, please basically skip the appendix this time."
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


def test_a_result_never_has_more_tokens_than_its_input():
    samples = [
        CHATTY_REQUEST,
        CODE_REQUEST,
        SYSTEM_PROMPT,
        "ok",
        "Please.",
        "so, well, basically " * 30,
        "   indented line   \n\n\n\ntrailing   " * 20,
        "Ünïcödé — “quotes” «and» 「brackets」 with really very fillers. " * 10,
    ]
    for text in samples:
        for level in ("low", "medium", "high"):
            result = compress_text(text, level=level, model="gpt-4o")
            assert result.tokens_after <= result.tokens_before
            if result.tokens_after == result.tokens_before:
                assert result.text == text
            assert result.text.strip()


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
    assert high.tokens_after <= medium.tokens_after < medium.tokens_before


def test_compress_messages_leaves_assistant_prose_alone_and_counts_what_it_sends():
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": CHATTY_REQUEST},
        {
            "role": "assistant",
            "content": "Basically, I would really like to help you in order to migrate. " * 6,
        },
    ]
    original = json.loads(json.dumps(messages))
    compressed, stats = compress_messages(messages, level="medium", model="gpt-4o")
    assert messages == original, "input must not be mutated"
    assert compressed[2] is messages[2]
    assert compressed[1]["content"] != messages[1]["content"]
    assert stats.tokens_before == count_message_tokens(messages, model="gpt-4o")
    assert stats.tokens_after == count_message_tokens(compressed, model="gpt-4o")
    assert stats.tokens_saved > 0
    assert stats.messages_changed == 2


def test_roles_to_compress_are_configurable():
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": CHATTY_REQUEST},
    ]
    compressed, _stats = compress_messages(
        messages, level="medium", model="gpt-4o", roles=("system",)
    )
    assert compressed[1] is messages[1]
    assert compressed[0] != messages[0]


def test_a_turn_that_repeats_an_earlier_one_becomes_a_reference_and_sentences_stay():
    repeated = "The export job runs at 02:00 UTC and writes to the billing replica."
    messages = [
        {"role": "user", "content": f"{CHATTY_REQUEST}\n\n{repeated}"},
        {"role": "assistant", "content": "Which error did it log?"},
        # A sentence repeated inside new text is not a whole repeat: it stays.
        {"role": "user", "content": " ".join([f"{repeated} The error is a timeout."] * 5)},
        {"role": "user", "content": f"{CHATTY_REQUEST}\n\n{repeated}"},
    ]
    compressed, stats = compress_messages(messages, level="low", model="gpt-4o")
    assert compressed[2] is messages[2]
    # Two long user messages came before: the reference says which one it repeats.
    assert compressed[3]["content"] == (
        '[same as the user message that starts "Hello there! I hope you\'re doing well th…" above]'
    )
    assert stats.repeats_removed == 1


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


def test_high_rewrites_instruction_scaffolding_to_imperatives():
    result = compress_text(SYSTEM_PROMPT, level="high", model="gpt-4o").text
    assert result.startswith("You are Quill, writing assistant for ")
    assert "Always respond politely." in result
    assert "Review drafts submitted by authors" in result


def test_negation_and_condition_clauses_keep_their_articles_even_at_high():
    text = (
        "You help the members of the club with the booking of the courts. Never reveal the name "
        "of a member to another member. If a member asks for a refund, say that the manager "
        "decides. Offer a callback when the member has asked for a human twice. Round the fee to "
        "the nearest dollar and use the prices that the club sets for each season."
    )
    result = compress_text(text, level="high", model="gpt-4o").text
    assert result.startswith("Help members of club with booking of courts.")
    assert "Never reveal the name of a member to another member." in result
    assert "If a member asks for a refund" in result
    assert "when the member has asked for a human twice" in result
    assert "Round the fee to the nearest dollar" in result


def test_telegraphic_rules_leave_other_languages_alone():
    spanish = (
        "Por favor, resuma el informe de la reunión a las 10:30 en la sala 4 y envíelo a todo el "
        "equipo de ventas antes del viernes. El informe debe tener una lista de las decisiones, "
        "una lista de las tareas pendientes y una nota sobre el presupuesto del próximo año."
    )
    assert compress_text(spanish, level="high", model="gpt-4o").text == spanish


def test_worked_examples_are_kept_verbatim():
    text = (
        "Answer in the format of the examples, and basically show the working for the reader "
        "in order to make the steps easy to follow.\n"
        "Q: A crate holds 12 jars and the shop has 5 crates. How many jars are there?\n"
        "A: The shop has 5 x 12 = 60 jars. The answer is 60.\n\n"
        "Q: A van carries 9 boxes on each of the 4 trips that it makes. How many boxes?\nA:"
    )
    for level in ("medium", "high"):
        result = compress_text(text, level=level, model="gpt-4o").text
        for line in text.splitlines()[1:]:
            assert line in result


def test_a_repeated_system_prompt_is_rewritten_once():
    from proxy.synthlang import engine

    engine._system_rewrite.cache_clear()
    first_user, second_user = CHATTY_REQUEST, CHATTY_REQUEST + " And 2 in Bergen?"
    first, _ = compress_messages(
        [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": first_user}],
        level="medium",
        model="gpt-4o",
    )
    second, _ = compress_messages(
        [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": second_user}],
        level="medium",
        model="gpt-4o",
    )
    info = engine._system_rewrite.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert first[0] == second[0]
    assert first[0]["content"] != SYSTEM_PROMPT


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
            "Summary first.\n\nIf you could draft a reply to the customer, I would be grateful.",
            "\n\nDraft reply to customer.",
        ),
        (
            "It is late. And if you could keep it short, that would be wonderful.",
            "It is late. Keep it short",
        ),
        # An opener removed at a line start leaves neither its space nor a lowercase letter
        # (and, at high, articles go).
        (
            "Summary first.\n\nFrom what I can see on my end, the parcel is in Lyon.",
            "\n\nParcel is in Lyon.",
        ),
    ],
)
def test_high_restarts_the_sentence_a_removed_opener_leaves(text, expected):
    # The rules on a system prompt, where every paragraph is instruction prose.
    padded = text + " " + "Answer in one short paragraph for the customer." * 6
    compressed, _ = compress_messages(
        [{"role": "system", "content": padded}], level="high", encoding=O200K
    )
    assert expected in compressed[0]["content"]
