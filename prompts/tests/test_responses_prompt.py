"""The Responses API's own ``prompt`` field ({"id", "version", "variables"}) renders the
organization's stored prompt, through the official openai SDK against a real proxy."""

from __future__ import annotations

import openai
import pytest

from proxy.tests.test_openai_sdk_e2e import sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

NO_CACHE = {"x-synthlang-cache": "off"}


def test_a_prompt_by_version_is_rendered_and_echoed_and_its_usage_counted_by_version(
    proxy_url, greeting, alice_key, alice_client
):
    client = sdk(proxy_url, alice_key)
    prompt = {
        "id": "greeting",
        "version": "2",  # OpenAI sends the version as a string
        "variables": {"tone": "kind", "name": {"type": "input_text", "text": "Grace"}},
    }
    raw = client.responses.with_raw_response.create(
        prompt=prompt, store=False, extra_headers=NO_CACHE
    )
    response = raw.parse()

    assert response.output_text.endswith("Say hi to Grace from the v2 prompt")
    assert response.model == "gpt-4o-mini"  # the version's model
    assert response.prompt.id == "greeting" and response.prompt.version == "2"
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.endpoint == "responses"
    assert event.annotations["prompts"] == {"prompt": "greeting", "version": 2}
    usage = alice_client.get("/api/prompts/greeting/usage/").json()
    assert [(row["version"], row["requests"]) for row in usage["data"]] == [(2, 1)]


def test_a_non_numeric_version_names_a_label_and_input_follows_the_prompt(
    proxy_url, greeting, alice_key
):
    response = sdk(proxy_url, alice_key).responses.create(
        model="gpt-4o",
        prompt={
            "id": "greeting",
            "version": "production",
            "variables": {"tone": "calm", "name": "Ada"},
        },
        input="And add a joke",
        store=False,
        extra_headers=NO_CACHE,
    )

    # The input follows the prompt's messages: the last user turn is the input.
    assert response.output_text.endswith("And add a joke")
    assert response.model == "gpt-4o"  # v1 pins no model: the request's


def test_a_streamed_response_renders_the_prompt(proxy_url, greeting, alice_key):
    events = list(
        sdk(proxy_url, alice_key).responses.create(
            # "label" is the library's own key, beside OpenAI's three.
            prompt={
                "id": "greeting",
                "label": "staging",
                "variables": {"tone": "kind", "name": "Linus"},
            },
            stream=True,
            store=False,
            extra_headers=NO_CACHE,
        )
    )

    done = next(e for e in events if e.type == "response.completed").response
    assert done.output_text.endswith("Say hi to Linus from the v2 prompt")
    assert done.prompt.id == "greeting"


@pytest.mark.parametrize(
    "prompt, param",
    [
        ({"id": "no-such-prompt"}, "prompt.id"),
        ({"id": "greeting", "version": "9", "variables": {}}, "prompt.version"),
        ({"id": "greeting", "variables": {"name": "Ada"}}, "prompt.variables.tone"),
        (
            {
                "id": "greeting",
                "variables": {
                    "tone": "kind",
                    "name": {"type": "input_image", "image_url": "https://example.com/a.png"},
                },
            },
            "prompt.variables.name",
        ),
    ],
    ids=["unknown-prompt", "unknown-version", "missing-variable", "image-variable"],
)
def test_a_bad_prompt_reference_is_openais_400_naming_the_field(
    proxy_url, greeting, alice_key, prompt, param
):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(proxy_url, alice_key).responses.create(model="gpt-4o", prompt=prompt, store=False)

    assert refused.value.body["param"] == param
    assert refused.value.body["type"] == "invalid_request_error"


def test_an_outsiders_key_does_not_see_the_prompt(proxy_url, greeting, charlie_key):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(proxy_url, charlie_key).responses.create(
            model="gpt-4o", prompt={"id": "greeting"}, store=False
        )

    assert "Unknown prompt" in refused.value.message


def test_a_route_that_speaks_responses_gets_the_rendered_prompt_as_chat(
    proxy_url, greeting, alice_key, route_to, fake_upstream
):
    # Passed through, OpenAI would look for a hosted prompt of that id; the library's is
    # rendered here, so the request takes the translated path.
    route_to("native-model", ("native-upstream", 0))
    response = sdk(proxy_url, alice_key).responses.create(
        model="native-model",
        prompt={"id": "greeting", "version": "1", "variables": {"tone": "kind", "name": "Ada"}},
        store=False,
        extra_headers=NO_CACHE,
    )

    assert response.output_text.endswith("Greet Ada warmly")
    sent = fake_upstream.stats()["last_bodies"]["native-upstream"]
    assert "input" not in sent and "prompt" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "You are a kind assistant."}


def test_an_openai_hosted_prompt_id_is_passed_through_to_an_openai_route(
    proxy_url, alice_key, route_to, fake_upstream
):
    route_to("native-model", ("native-upstream", 0))
    hosted = {"id": "pmpt_0123abcd", "version": "3", "variables": {"city": "Lisbon"}}
    raw = sdk(proxy_url, alice_key).responses.with_raw_response.create(
        model="native-model", prompt=hosted, input="Weather?", store=False
    )

    assert raw.headers["x-synthlang-cache"] == "off"  # the pass-through
    sent = fake_upstream.stats()["last_bodies"]["native-upstream"]
    assert sent["prompt"] == hosted and "messages" not in sent
