"""Rendering and diffing: plain functions, no database."""

from __future__ import annotations

import pytest

from prompts.templating import (
    TemplateError,
    check_messages,
    diff,
    render,
    variables_of,
    version_text,
)

TEMPLATE = [
    {"role": "system", "content": "You are {{ tone }}."},
    {"role": "user", "content": [{"type": "text", "text": "Hi {{name}}, {{name}}!"}]},
]


def test_placeholders_are_replaced_in_strings_and_text_parts():
    rendered = render(TEMPLATE, {"tone": "kind", "name": "Ada"})

    assert rendered[0]["content"] == "You are kind."
    assert rendered[1]["content"] == [{"type": "text", "text": "Hi Ada, Ada!"}]


def test_rendering_leaves_the_template_unchanged():
    render(TEMPLATE, {"tone": "kind", "name": "Ada"})

    assert TEMPLATE[0]["content"] == "You are {{ tone }}."
    assert TEMPLATE[1]["content"][0]["text"] == "Hi {{name}}, {{name}}!"


def test_a_missing_variable_is_named():
    with pytest.raises(TemplateError) as error:
        render(TEMPLATE, {"tone": "kind"})

    assert "name" in str(error.value)
    assert error.value.param == "prompt.variables.name"


def test_an_unused_variable_is_ignored():
    rendered = render(TEMPLATE, {"tone": "kind", "name": "Ada", "unused": "x"})

    assert rendered[0]["content"] == "You are kind."


def test_a_value_holding_a_placeholder_is_not_expanded_again():
    rendered = render(TEMPLATE, {"tone": "{{name}}", "name": "Ada"})

    assert rendered[0]["content"] == "You are {{name}}."


def test_expressions_are_not_evaluated():
    template = [{"role": "user", "content": "{{ name.__class__ }} {{ 7*7 }} {% if x %}"}]

    assert variables_of(template) == []
    assert render(template, {})[0]["content"] == template[0]["content"]


def test_numbers_and_booleans_become_text_and_objects_are_refused():
    template = [{"role": "user", "content": "{{n}} {{flag}}"}]

    assert render(template, {"n": 3, "flag": True})[0]["content"] == "3 true"
    with pytest.raises(TemplateError) as error:
        render(template, {"n": {"a": 1}, "flag": False})
    assert error.value.param == "prompt.variables.n"


def test_variables_are_listed_in_order_of_first_use():
    assert variables_of(TEMPLATE) == ["tone", "name"]


@pytest.mark.parametrize(
    "messages",
    [[], "text", [{"role": "robot", "content": "x"}], [{"role": "user", "content": ""}]],
)
def test_a_template_that_is_not_chat_messages_is_refused(messages):
    with pytest.raises(TemplateError):
        check_messages(messages)


def test_the_diff_shows_changed_lines_model_and_parameters():
    old = version_text(messages=TEMPLATE, model="", parameters={"temperature": 0.2})
    new_messages = [TEMPLATE[0], {"role": "user", "content": "Bye {{name}}"}]
    new = version_text(messages=new_messages, model="gpt-4o-mini", parameters={})

    lines = diff(old, new, old_name="p v1", new_name="p v2")

    assert lines[0] == "--- p v1" and lines[1] == "+++ p v2"
    assert "-Hi {{name}}, {{name}}!" in lines
    assert "+Bye {{name}}" in lines
    assert "-temperature: 0.2" in lines
    assert "+model: gpt-4o-mini" in lines
    assert " You are {{ tone }}." in lines  # unchanged context


def test_two_equal_versions_have_an_empty_diff():
    text = version_text(messages=TEMPLATE, model="", parameters={})

    assert diff(text, list(text), old_name="a", new_name="b") == []
