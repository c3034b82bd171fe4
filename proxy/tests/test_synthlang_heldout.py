"""A held-out prompt set written for these tests, never seen while the rules were written.

The dev set measures; this set checks that the rules generalise: every must-keep string
survives every level, nothing grows, and the reductions are of the same order as on the dev set.
"""

from __future__ import annotations

import statistics

import pytest

from proxy.synthlang import compress_messages
from proxy.tokens import CL100K, O200K, count_message_tokens

SUPPORT_BOT = (
    "You are Juniper, the support assistant for Tidewater Energy, a electricity and gas supplier "
    "in the north of England. You help customers with questions about their bills, meter "
    "readings, tariffs and moving home. Your goal is to resolve the question in the fewest "
    "messages possible, and you should always make sure to use a calm and friendly tone.\n\n"
    "## Billing\n"
    "- Explain that bills are issued on the 3rd of each month and that the direct debit is taken "
    "7 days later.\n"
    "- Never promise a refund. If a customer asks for one, say that the billing team reviews "
    "every request within 5 working days.\n"
    "- It is important that you ask for the latest meter reading when the customer disputes an "
    "estimated bill.\n\n"
    "## Moving home\n"
    "- Customers who are moving should give the date of the move and a final meter reading. "
    "Direct them to https://tidewater.example/move for the form.\n"
    "- Do not close an account over chat.\n\n"
    "## Tone\n"
    "- Keep answers under 120 words. Do not use emojis."
)
CODING_ASSISTANT = (
    "You are a senior Go engineer who reviews pull requests for the payments service. You "
    "review the diff that the user pastes and point out the bugs, the race conditions and the "
    "missing tests. You should explain the reason for each comment in one or two sentences, "
    "and you should suggest a concrete fix with a short code snippet. Prefer the standard "
    "library over third-party packages. Do not comment on naming unless it hides a bug. If the "
    "diff touches `ledger.Post`, check that every call passes an idempotency key. Assume the "
    "code runs on Go 1.22 with the race detector enabled in CI."
)
RAG_INSTRUCTIONS = (
    "You answer questions for the staff of the Greenfield Public Library using the passages "
    "that are retrieved from the library's policy handbook. Read all of the passages before "
    "you answer. Quote the exact wording of a policy when the question is about fines, loan "
    "periods or room bookings. Cite each passage that you use as [P1], [P2] and so on, in the "
    "order in which they appear. If the passages do not answer the question, say that the "
    "handbook does not cover it and suggest asking the branch manager. Keep the answer to a "
    "short paragraph, and put the citations at the end of the sentence that they support."
)
CHATTY_REQUEST = (
    "Hi! I hope you're having a good week. I was wondering if you could help me out with "
    "something. Basically, my sister Olena is turning 40 on June 14 and we are throwing a "
    "surprise dinner for about 18 people at a restaurant called Casa Verde in Leeds. I would "
    "really appreciate it if you could write a short and really warm toast that I can read out "
    "before the dessert. She loves hiking and she ran the Manchester marathon last year in "
    "4 hours 12 minutes, so it would be great to mention that. Please don't mention her age "
    "directly though, she is a bit sensitive about it. Thanks so much in advance!"
)
CHATTY_REQUEST_2 = (
    "Hello there, sorry in advance for the long message. So, I'm writing because I need some "
    "help with a cover letter. I'm applying for a junior data analyst role at Northgate Insurance "
    "and the deadline is Friday, March 7. I have a degree in economics from the University of "
    "Sheffield and I have basically spent the last 2 years working at a call centre, where I "
    "actually built a really simple dashboard in Excel that the team still uses every day. "
    "Could you please write a cover letter of around 250 words that makes the most of that "
    "experience? It would be great if it sounded confident but not arrogant. Thank you!"
)

HELD_OUT = [
    {
        "kind": "system_prompt",
        "messages": [
            {"role": "system", "content": SUPPORT_BOT},
            {"role": "user", "content": "why is my bill so high this month??"},
        ],
        "must_keep": [
            "Juniper", "Tidewater Energy", "3rd of each month", "7 days", "Never promise a refund",
            "5 working days", "https://tidewater.example/move", "Do not close an account over chat",
            "under 120 words", "Do not use emojis", "when the customer disputes an estimated bill",
        ],
    },
    {
        "kind": "system_prompt",
        "messages": [
            {"role": "system", "content": CODING_ASSISTANT},
            {"role": "user", "content": "Here is the diff: ```go\nfunc Pay() {}\n```"},
        ],
        "must_keep": [
            "Go", "Do not comment on naming unless it hides a bug", "`ledger.Post`",
            "Go 1.22", "If the diff touches `ledger.Post`", "```go\nfunc Pay() {}\n```",
        ],
    },
    {
        "kind": "system_prompt",
        "messages": [
            {"role": "system", "content": RAG_INSTRUCTIONS},
            {"role": "user", "content": "Passages: [P1] Fines are 20p per day.\n\nCan I renew?"},
        ],
        "must_keep": [
            "Greenfield Public Library", "[P1], [P2]", "If the passages do not answer the question",
            "[P1] Fines are 20p per day.", "when the question is about fines, loan periods or room "
            "bookings",
        ],
    },
    {
        "kind": "verbose_request",
        "messages": [{"role": "user", "content": CHATTY_REQUEST}],
        "must_keep": [
            "Olena", "June 14", "18 people", "Casa Verde", "Leeds", "Manchester",
            "4 hours 12 minutes", "don't mention her age directly",
        ],
    },
    {
        "kind": "verbose_request",
        "messages": [{"role": "user", "content": CHATTY_REQUEST_2}],
        "must_keep": [
            "Northgate Insurance", "Friday, March 7", "University of Sheffield", "2 years",
            "Excel", "250 words", "confident but not arrogant",
        ],
    },
    {
        "kind": "multi_turn",
        "messages": [
            {"role": "system", "content": CODING_ASSISTANT},
            {"role": "user", "content": CHATTY_REQUEST_2},
            {"role": "assistant", "content": "Here is a draft: Dear hiring team, ..."},
            {
                "role": "user",
                "content": "Thanks! Could you please make it a little bit shorter and really "
                "mention the dashboard in the first paragraph? Do not change the closing line.",
            },
        ],
        "must_keep": ["Do not change the closing line", "Northgate Insurance", "250 words"],
    },
]  # fmt: skip


def _reduction(item, level, encoding):
    compressed, _stats = compress_messages(item["messages"], level=level, encoding=encoding)
    before = count_message_tokens(item["messages"], encoding=encoding)
    after = count_message_tokens(compressed, encoding=encoding)
    return compressed, (before - after) / before


def _text(messages):
    return "\n\u0000\n".join(message["content"] for message in messages)


@pytest.mark.parametrize("level", ["low", "medium"])
@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_held_out_must_keep_strings_survive_and_nothing_grows(level, encoding):
    for item in HELD_OUT:
        source = _text(item["messages"])
        compressed, reduction = _reduction(item, level, encoding)
        output = _text(compressed)
        for text in item["must_keep"]:
            assert text in source, text
            assert text in output, (level, text)
        assert reduction >= 0


@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_held_out_high_keeps_what_it_must_up_to_the_case_of_a_restarted_sentence(encoding):
    """`high` rewords, and may give the word after a removed opener a capital."""
    for item in HELD_OUT:
        compressed, reduction = _reduction(item, "high", encoding)
        output = _text(compressed).lower()
        for text in item["must_keep"]:
            assert text.lower() in output, text
        assert reduction >= 0


def _median(kind, level, encoding):
    return statistics.median(
        _reduction(item, level, encoding)[1] for item in HELD_OUT if item["kind"] == kind
    )


@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_held_out_chatty_requests_shrink_at_medium_and_more_at_high(encoding):
    # Measured when the safe levels were introduced (o200k_base): verbose requests 7% at
    # medium (request framing and fillers only), 16% at high.
    assert _median("verbose_request", "medium", encoding) >= 0.05
    assert _median("verbose_request", "high", encoding) >= 0.12


@pytest.mark.parametrize("encoding", [CL100K, O200K])
def test_held_out_each_level_saves_at_least_as_much_as_the_one_below(encoding):
    for item in HELD_OUT:
        low = _reduction(item, "low", encoding)[1]
        medium = _reduction(item, "medium", encoding)[1]
        assert _reduction(item, "high", encoding)[1] >= medium >= low >= 0
