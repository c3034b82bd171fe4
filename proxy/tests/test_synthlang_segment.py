"""Instruction prose versus material: which parts of a prompt compression may reword."""

from __future__ import annotations

import pytest

from proxy.synthlang.segment import (
    INSTRUCTION,
    JSON,
    MATERIAL,
    declares_user_material,
    material_spans,
    segments,
)


def _kinds(text: str, role: str = "user") -> list[tuple[str, str]]:
    return [(kind, text[start:end]) for start, end, kind in segments(text, role=role)]


def _material(text: str, role: str = "user") -> str:
    return "".join(text[start:end] for start, end in material_spans(text, role=role))


def test_blank_lines_before_a_block_belong_to_the_request_not_to_the_block():
    text = "Check the poem below for rhythm.   \n\n\n\n    the tide comes in\n  slowly"
    assert _material(text) == "    the tide comes in\n  slowly"


def test_segments_cover_the_text_in_order():
    text = "Fix this:\n\n```py\nx = 1\n```\n\nThanks.\n\nRules:\n- one\n- two"
    for role in ("user", "system"):
        pieces = segments(text, role=role)
        assert pieces[0][0] == 0 and pieces[-1][1] == len(text)
        assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))


def test_a_user_turn_is_a_request_followed_by_material():
    text = (
        "Please proofread the paragraph below and list the changes.\n\n"
        "The report was published on the 14th. It shows that the the board agreed."
    )
    assert _kinds(text) == [
        (INSTRUCTION, "Please proofread the paragraph below and list the changes.\n\n"),
        (MATERIAL, "The report was published on the 14th. It shows that the the board agreed."),
    ]


@pytest.mark.parametrize(
    ("text", "material"),
    [
        # A line ending in a colon introduces the rest.
        ("Make this warmer\nDear Sam, the parcel is late.", ""),
        (
            "Could you make this note a little warmer:\nDear Sam, the parcel is late.",
            "Dear Sam, the parcel is late.",
        ),
        # So does a colon inside the line.
        ("Please summarise this for the whole team: the parcel is late.", "the parcel is late."),
        # A short label line ("Make it warmer:") is material as a whole.
        ("Make it warmer:\nDear Sam, the parcel is late.", "Make it warmer:\nDear Sam"),
        # A labelled line is material from the label on.
        ("Draft: the parcel is late and the van broke down.", "Draft: the parcel is late and"),
        # A forward reference ends the request at its line.
        ("Rewrite the following\nthe parcel is late", "the parcel is late"),
    ],
)
def test_what_introduces_material_in_a_user_turn(text, material):
    assert _material(text).startswith(material)
    assert (material == "") == (_material(text) == "")


def test_everything_after_the_first_paragraph_of_a_user_turn_is_material():
    text = "Can you help with the note to my neighbours?\n\nWe are having the kitchen redone."
    assert _material(text) == "We are having the kitchen redone."


@pytest.mark.parametrize(
    "line",
    [
        "    indented like code or a poem",
        "\tTabbed",
        "> a quoted e-mail line",
        "| Stop | Depart |",
        "Kingsbridge       07:12    -        2",
        "Nakamura, H., Okoye, C., and Lindqvist, A. Sleep debt.",
        "Holt, J. (n.d.). Field notes. Unpublished manuscript.",
        "sku,description,on_hand",
        "Speaker 2: we can ship on Friday if the van is back",
    ],
)
def test_material_lines_are_recognised_by_their_shape(line):
    text = f"You are a helpful assistant that answers questions.\n{line}\nBe brief."
    assert line in _material(text, role="system")


def test_quotations_across_lines_and_fences_are_material_anywhere():
    text = (
        'You review replies. A good one reads "Dear customer,\nthe order ships today." and '
        "nothing else.\n\n```\nsome  code\n```\nAlways sign off."
    )
    material = _material(text, role="system")
    assert '"Dear customer,\nthe order ships today."' in material
    assert "```\nsome  code\n```" in material
    assert "Always sign off." not in material


def test_a_list_of_rules_after_a_colon_stays_instruction_in_a_system_prompt():
    text = "You book appointments.\n\nBooking rules:\n1. First visits last 60 minutes.\n2. Be kind."
    assert "1. First visits last 60 minutes." not in _material(text, role="system")


def test_a_document_after_a_colon_is_material_in_a_system_prompt():
    text = "Answer from the context.\n\nContext:\nThe survey found 38%.\n\nIt ran in 2023."
    assert _material(text, role="system") == "The survey found 38%.\n\nIt ran in 2023."


def test_json_in_a_system_prompt_is_its_own_piece_and_json_in_a_fence_is_not():
    text = 'Tools:\n[\n  {"name": "search"}\n]\nAnd:\n```json\n{\n  "a": 1\n}\n```'
    kinds = _kinds(text, role="system")
    assert (JSON, '[\n  {"name": "search"}\n]') in kinds
    assert not any(kind == JSON and '"a"' in piece for kind, piece in kinds)
    # In a user turn JSON is data the user supplies: plain material.
    assert all(kind != JSON for kind, _piece in _kinds(text, role="user"))


@pytest.mark.parametrize(
    ("system", "declares"),
    [
        ("Translate the user's message into French.", True),
        ("You will receive a passage and an instruction.", True),
        ("Correct the grammar of each incoming e-mail.", True),
        ("You are a copy editor. You are given a draft; return it edited.", True),
        ("Answer the user's question politely.", False),
        ("You are a support assistant for a bank.", False),
    ],
)
def test_a_system_prompt_can_make_every_user_turn_material(system, declares):
    assert declares_user_material(system) is declares
    if declares:
        text = "Basically, in order to win we need to train. Could you please help?"
        assert segments(text, role="user", user_material=True) == [(0, len(text), MATERIAL)]
