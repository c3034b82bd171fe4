"""The official openai SDK against a real proxy process: a stored prompt used by label with
variables (``extra_body``), and its usage and cost reported per version."""

from __future__ import annotations

import openai
import pytest

from prompts import services
from proxy.tests.test_openai_sdk_e2e import sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _by_label(client: openai.OpenAI, label: str, name: str):
    return client.chat.completions.with_raw_response.create(
        model="",
        messages=[],
        extra_body={
            "prompt": {
                "id": "greeting",
                "label": label,
                "variables": {"tone": "kind", "name": name},
            }
        },
        extra_headers={"x-synthlang-cache": "off"},
    )


def test_a_prompt_by_label_is_rendered_and_its_usage_is_reported_by_version(
    proxy_url, greeting, alice_key, alice_client
):
    client = sdk(proxy_url, alice_key)

    production = _by_label(client, "production", "Ada")
    staging = _by_label(client, "staging", "Grace")
    again = _by_label(client, "production", "Linus")

    assert production.parse().choices[0].message.content.endswith("Greet Ada warmly")
    assert staging.parse().choices[0].message.content.endswith("Say hi to Grace from the v2 prompt")
    assert staging.parse().model == "gpt-4o-mini"
    events = [wait_for_usage(raw.headers["x-request-id"]) for raw in (production, staging, again)]
    usage = alice_client.get("/api/prompts/greeting/usage/").json()
    by_version = {row["version"]: row for row in usage["data"]}
    assert sorted(by_version) == [1, 2]
    assert by_version[1]["requests"] == 2
    assert by_version[2]["requests"] == 1
    assert by_version[1]["prompt_tokens"] == events[0].prompt_tokens + events[2].prompt_tokens
    assert by_version[2]["cost_micros"] == events[1].cost_micros > 0


def test_the_sdk_raises_bad_request_for_a_missing_variable(proxy_url, greeting, alice_key):
    with pytest.raises(openai.BadRequestError) as error:
        sdk(proxy_url, alice_key).chat.completions.create(
            model="",
            messages=[],
            extra_body={"prompt": {"id": "greeting", "label": "production"}},
        )

    assert error.value.body["param"] == "prompt.variables.tone"


def test_an_outsiders_key_cannot_use_the_prompt(proxy_url, greeting, charlie_key):
    with pytest.raises(openai.BadRequestError) as error:
        sdk(proxy_url, charlie_key).chat.completions.create(
            model="", messages=[], extra_body={"prompt": {"id": "greeting"}}
        )

    assert "Unknown prompt" in error.value.message


def test_a_stream_renders_the_prompt_too(proxy_url, greeting, alice_key):
    services.prompt_label_set(
        prompt=greeting, label="production", version=greeting.versions.get(number=2), actor=None
    )
    stream = sdk(proxy_url, alice_key).chat.completions.create(
        model="",
        messages=[],
        stream=True,
        extra_body={
            "prompt": {
                "id": "greeting",
                "label": "production",
                "variables": {"tone": "t", "name": "Ada"},
            }
        },
    )

    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.endswith("Say hi to Ada from the v2 prompt")
