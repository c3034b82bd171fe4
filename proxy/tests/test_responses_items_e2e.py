"""Input items, deletion and cancellation of stored responses, with the openai SDK, on
both paths (translated to chat on the fake provider, passed through to an OpenAI route),
scoped to the organization that made them."""

from __future__ import annotations

import openai
import pytest

from proxy.tests.test_openai_sdk_e2e import sdk
from proxy.tests.test_prompt_cache_e2e import caching_proxy, prices  # noqa: F401 - fixtures
from proxy.tests.test_responses_native_e2e import HEADERS
from proxy.tests.test_responses_native_e2e import client as native_client  # noqa: F401

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

TURN = [
    {"role": "user", "content": "My name is Ada."},
    {"role": "assistant", "content": "Hello Ada."},
    {"role": "user", "content": [{"type": "input_text", "text": "What is my name?"}]},
]


def test_input_items_are_listed_newest_first_a_page_at_a_time(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    response = client.responses.create(model="gpt-4o", input=TURN)
    items = list(client.responses.input_items.list(response.id))
    assert [item.role for item in items] == ["user", "assistant", "user"]
    assert items[0].content[0].text == "What is my name?"
    assert items[2].content[0].text == "My name is Ada."
    assert len({item.id for item in items}) == 3

    first = client.responses.input_items.list(response.id, limit=2, order="asc")
    assert [item.content[0].text for item in first.data] == ["My name is Ada.", "Hello Ada."]
    assert first.has_more is True and first.last_id == first.data[-1].id
    second = client.responses.input_items.list(
        response.id, limit=2, order="asc", after=first.last_id
    )
    assert [item.id for item in second.data] == [items[0].id] and second.has_more is False
    # The SDK follows the pages itself.
    assert [i.id for i in client.responses.input_items.list(response.id, limit=1)] == [
        i.id for i in items
    ]
    with pytest.raises(openai.BadRequestError):
        client.responses.input_items.list(response.id, limit=101)

    follow_up = client.responses.create(
        model="gpt-4o", input="Thanks", previous_response_id=response.id
    )
    # Only this turn's input: the earlier turns are the previous response's items.
    listed = client.responses.input_items.list(follow_up.id)
    assert [item.content[0].text for item in listed.data] == ["Thanks"]


def test_another_organization_cannot_read_list_cancel_or_delete_a_response(
    proxy_url, alice_key, charlie_key
):
    alice, charlie = sdk(proxy_url, alice_key), sdk(proxy_url, charlie_key)
    response = alice.responses.create(model="gpt-4o", input="A secret of org A")
    for attempt in (
        lambda: charlie.responses.retrieve(response.id),
        lambda: charlie.responses.input_items.list(response.id),
        lambda: charlie.responses.cancel(response.id),
        lambda: charlie.responses.delete(response.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert alice.responses.retrieve(response.id).id == response.id


def test_cancel_is_refused_because_background_mode_is_not_run_and_delete_removes(
    proxy_url, alice_key
):
    client = sdk(proxy_url, alice_key)
    response = client.responses.create(model="gpt-4o", input="Keep me for a while")
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.cancel(response.id)
    assert "background" in raised.value.body["message"]
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-4o", input="later", background=True)
    assert raised.value.body["param"] == "background"
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_unknown")

    client.responses.delete(response.id)
    for attempt in (
        lambda: client.responses.retrieve(response.id),
        lambda: client.responses.input_items.list(response.id),
        lambda: client.responses.delete(response.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()


def test_a_passed_through_response_lists_its_input_items_and_refuses_background(
    native_client,  # noqa: F811
):
    client = native_client
    response = client.responses.create(model="gpt-native", input=TURN, extra_headers=HEADERS)
    items = list(client.responses.input_items.list(response.id, order="asc"))
    assert [item.role for item in items] == ["user", "assistant", "user"]
    assert items[1].content[0].text == "Hello Ada."
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(
            model="gpt-native", input="later", background=True, extra_headers=HEADERS
        )
    assert raised.value.body["param"] == "background"
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
