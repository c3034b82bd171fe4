"""Guardrails on answers the response cache replays, on every wire format the cache serves
(chat, and Responses and Messages translated to chat), streamed and not, through the
official SDKs. A replayed answer is the upstream's as stored, placeholders included, so
the stages must act on it as on a fresh one."""

from __future__ import annotations

import anthropic
import pytest

from guardrails import services
from guardrails.tests.test_guardrails_e2e import CARD, EMAIL, PROMPT, sdk
from proxy.tests.test_openai_sdk_e2e import wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _anthropic(base_url, key):
    return anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)


def _chat(base_url, key, *, stream: bool, prompt: str = PROMPT) -> tuple[str, dict]:
    """(answer text, response headers) of one chat call."""
    client = sdk(base_url, key)
    request = {"model": "guarded", "messages": [{"role": "user", "content": prompt}]}
    if not stream:
        raw = client.chat.completions.with_raw_response.create(**request)
        return raw.parse().choices[0].message.content, raw.headers
    raw = client.chat.completions.with_raw_response.create(**request, stream=True)
    chunks = [c for c in raw.parse() if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    ENDINGS[raw.headers["x-request-id"]] = chunks[-1].choices[0].finish_reason
    return text, raw.headers


def _responses(base_url, key, *, stream: bool, prompt: str = PROMPT) -> tuple[str, dict]:
    client = sdk(base_url, key)
    request = {"model": "guarded", "input": prompt, "store": False}
    if not stream:
        raw = client.responses.with_raw_response.create(**request)
        return raw.parse().output_text, raw.headers
    raw = client.responses.with_raw_response.create(**request, stream=True)
    events = list(raw.parse())
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done").text
    final = events[-1].response
    # The deltas, the done event and the final snapshot must all say the same thing.
    assert deltas == done == final.output_text
    ending = final.incomplete_details.reason if final.incomplete_details else final.status
    ENDINGS[raw.headers["x-request-id"]] = ending
    return deltas, raw.headers


def _messages(base_url, key, *, stream: bool, prompt: str = PROMPT) -> tuple[str, dict]:
    client = _anthropic(base_url, key)
    request = {
        "model": "guarded",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": prompt}],
    }
    if not stream:
        raw = client.messages.with_raw_response.create(**request)
        return raw.parse().content[0].text, raw.headers
    with client.messages.stream(**request) as events:
        text = "".join(events.text_stream)
        final = events.get_final_message()
        assert final.content[0].text == text
        ENDINGS[events.response.headers["x-request-id"]] = final.stop_reason
        return text, events.response.headers


ENDINGS: dict[str, str] = {}  # request id -> how its stream said it ended
SURFACES = {"chat": _chat, "responses": _responses, "messages": _messages}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_a_replayed_answer_shows_the_users_own_values_not_placeholders(
    proxy_url, alice_key, org_a, route_to, surface, stream
):
    services.organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    route_to("guarded", ("guarded-upstream", 0))
    ask = SURFACES[surface]
    first, headers = ask(proxy_url, alice_key, stream=False)
    assert headers["x-synthlang-cache"] == "miss"
    assert EMAIL in first and "[EMAIL_1]" not in first
    wait_for_usage(headers["x-request-id"])  # stored once the answer was accounted
    replayed, headers = ask(proxy_url, alice_key, stream=stream)
    assert headers["x-synthlang-cache"] == "hit"
    assert EMAIL in replayed and CARD in replayed
    assert "[EMAIL_1]" not in replayed and "[CREDIT_CARD_1]" not in replayed
    assert replayed == first


# How each wire format says "cut by a content filter" (chat's finish_reason translated).
CUT = {"chat": "content_filter", "responses": "content_filter", "messages": "refusal"}


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_a_deny_rule_on_answers_cuts_a_replayed_stream_as_it_cuts_a_live_one(
    proxy_url, alice_key, bob_key, org_a, route_to, surface
):
    # The mask makes Responses translated (the cache serves only the translated path).
    services.organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    route_to("guarded", ("guarded-upstream", 0))
    ask = SURFACES[surface]
    prompt = "Tell me about the falcon and the hawk"
    first, headers = ask(proxy_url, alice_key, stream=False, prompt=prompt)
    assert headers["x-synthlang-cache"] == "miss" and "falcon" in first
    wait_for_usage(headers["x-request-id"])
    services.guardrail_rule_create(
        organization=org_a, name="no-falcon", pattern="falcon", target="response", actor=None
    )
    # bob's policy is read afresh (alice's may be cached in the server for a few seconds);
    # the cache is the organization's, so his question hits alice's stored answer.
    replayed, headers = ask(proxy_url, bob_key, stream=True, prompt=prompt)
    assert headers["x-synthlang-cache"] == "hit"
    assert "falcon" not in replayed
    assert first.startswith(replayed) and replayed  # the text before the phrase, as live
    assert ENDINGS[headers["x-request-id"]] == CUT[surface]
