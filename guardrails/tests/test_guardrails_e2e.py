"""Guardrails on a live proxy, through the official openai SDK."""

from __future__ import annotations

import openai
import pytest

from accounts import services as account_services
from guardrails import services
from guardrails.tests.splitting_upstream import splitting_upstream
from proxy.models import Deployment, ModelRoute
from proxy.tests.test_openai_sdk_e2e import wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PROMPT = f"Write to {EMAIL} about card {CARD} today"


def sdk(base_url, key):
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def split_model(live_db, org_a):
    """A route of org_a to an upstream that streams four characters per chunk."""
    with splitting_upstream() as upstream:
        credential = account_services.provider_credential_set(
            organization=org_a,
            provider="openai",
            key="sk-split-upstream-0001",
            base_url=f"http://127.0.0.1:{upstream.server_port}/v1",
            name="split",
            actor=None,
        )
        route = ModelRoute.objects.create(organization=org_a, public_name="split-model")
        Deployment.objects.create(
            route=route,
            provider="openai",
            credential=credential,
            upstream_model="split",
            priority=0,
        )
        yield upstream


def test_email_and_card_are_masked_upstream_and_restored_in_the_answer(
    proxy_url, alice_key, org_a, route_to, fake_upstream
):
    services.organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    route_to("guarded", ("guarded-upstream", 0))
    raw = sdk(proxy_url, alice_key).chat.completions.with_raw_response.create(
        model="guarded", messages=[{"role": "user", "content": PROMPT}]
    )
    answer = raw.parse().choices[0].message.content
    sent = fake_upstream.stats()["last_bodies"]["guarded-upstream"]["messages"][-1]["content"]
    assert EMAIL not in sent and "4111" not in sent
    assert "[EMAIL_1]" in sent and "[CREDIT_CARD_1]" in sent
    assert EMAIL in answer and CARD in answer and "[EMAIL_1]" not in answer
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.annotations["pii"] == {"mode": "mask", "email": 1, "credit_card": 1}


def test_a_stream_whose_chunks_split_a_placeholder_is_restored(
    proxy_url, alice_key, org_a, split_model
):
    services.organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    stream = sdk(proxy_url, alice_key).chat.completions.create(
        model="split-model", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    sent = split_model.received[-1]["messages"][-1]["content"]
    assert sent == "Write to [EMAIL_1] about card [CREDIT_CARD_1] today"
    assert "".join(pieces) == f"Echo: {PROMPT}"
    assert len(pieces) > 5  # it did arrive in pieces


def test_block_mode_is_a_400_naming_kinds_not_values(proxy_url, alice_key, org_a, route_to):
    services.organization_guardrails_update(organization=org_a, pii_mode="block", actor=None)
    route_to("guarded", ("guarded-upstream", 0))
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(proxy_url, alice_key).chat.completions.create(
            model="guarded", messages=[{"role": "user", "content": PROMPT}]
        )
    error = refused.value.body
    assert refused.value.status_code == 400 and error["code"] == "pii_detected"
    assert "EMAIL" in error["message"] and "CREDIT_CARD" in error["message"]
    assert EMAIL not in error["message"] and "4111" not in error["message"]


def test_the_header_tightens_the_organization_setting_and_is_validated(
    proxy_url, alice_key, org_a, route_to, fake_upstream
):
    route_to("guarded", ("guarded-upstream", 0))
    client = sdk(proxy_url, alice_key)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"x-synthlang-pii": "block"},
        )
    assert refused.value.body["code"] == "pii_detected"
    with pytest.raises(openai.BadRequestError) as invalid:
        client.chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"x-synthlang-pii": "sometimes"},
        )
    assert invalid.value.body["param"] == "x-synthlang-pii"
    # Without the header the organization's setting (off) applies: the text goes as is.
    client.chat.completions.create(model="guarded", messages=[{"role": "user", "content": PROMPT}])
    sent = fake_upstream.stats()["last_bodies"]["guarded-upstream"]["messages"][-1]["content"]
    assert sent == PROMPT


def test_the_header_cannot_loosen_the_organization_setting(proxy_url, alice_key, org_a, route_to):
    services.organization_guardrails_update(organization=org_a, pii_mode="block", actor=None)
    route_to("guarded", ("guarded-upstream", 0))
    with pytest.raises(openai.BadRequestError):
        sdk(proxy_url, alice_key).chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"x-synthlang-pii": "off"},
        )


def test_a_deny_rule_blocks_the_request(proxy_url, alice_key, org_a, route_to, fake_upstream):
    services.guardrail_rule_create(
        organization=org_a, name="codename", pattern="Project Falcon", actor=None
    )
    route_to("guarded", ("guarded-upstream", 0))
    fake_upstream.reset()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(proxy_url, alice_key).chat.completions.create(
            model="guarded", messages=[{"role": "user", "content": "Status of project falcon?"}]
        )
    assert refused.value.body["code"] == "content_blocked"
    assert "codename" in refused.value.body["message"]
    assert "guarded-upstream" not in fake_upstream.stats()["last_bodies"]


def test_a_deny_rule_on_answers_withholds_the_answer(proxy_url, alice_key, org_a, route_to):
    services.guardrail_rule_create(
        organization=org_a, name="no-falcon", pattern="falcon", target="response", actor=None
    )
    route_to("guarded", ("guarded-upstream", 0))
    # The fake echoes the question, so the answer carries the phrase the request may.
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(proxy_url, alice_key).chat.completions.create(
            model="guarded", messages=[{"role": "user", "content": "say falcon"}]
        )
    assert refused.value.body["code"] == "content_blocked"


def test_moderation_refuses_a_flagged_request_and_accounts_its_own_call(
    proxy_url, alice_key, org_a, route_to, fake_upstream
):
    route_to("guarded", ("guarded-upstream", 0))
    route_to("guard-moderation", ("omni-moderation-latest", 0))
    services.organization_guardrails_update(
        organization=org_a, moderation_model="guard-moderation", actor=None
    )
    client = sdk(proxy_url, alice_key)
    raw = client.chat.completions.with_raw_response.create(
        model="guarded", messages=[{"role": "user", "content": "a calm question"}]
    )
    assert raw.parse().choices[0].message.content
    moderation_event = wait_for_usage(raw.headers["x-request-id"] + "-moderation")
    assert moderation_event.endpoint == "moderations"
    assert moderation_event.prompt_tokens > 0

    fake_upstream.reset()
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="guarded", messages=[{"role": "user", "content": "[flag:violence] now"}]
        )
    assert refused.value.body["code"] == "content_blocked"
    assert "violence" in refused.value.body["message"]
    assert "guarded-upstream" not in fake_upstream.stats()["last_bodies"]
    request_id = refused.value.response.headers["x-request-id"]
    assert wait_for_usage(request_id + "-moderation").endpoint == "moderations"


def test_the_moderation_provider_sees_masked_text_only(
    proxy_url, alice_key, org_a, route_to, fake_upstream
):
    route_to("guarded", ("guarded-upstream", 0))
    route_to("guard-moderation", ("omni-moderation-latest", 0))
    services.organization_guardrails_update(
        organization=org_a, pii_mode="mask", moderation_model="guard-moderation", actor=None
    )
    sdk(proxy_url, alice_key).chat.completions.create(
        model="guarded", messages=[{"role": "user", "content": PROMPT}]
    )
    checked = fake_upstream.stats()["last_bodies"]["omni-moderation-latest"]["input"]
    assert checked == ["Write to [EMAIL_1] about card [CREDIT_CARD_1] today"]


def test_the_messages_api_is_masked_and_restored_too(
    proxy_url, alice_key, org_a, route_to, fake_upstream
):
    import anthropic

    services.organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    route_to("guarded", ("guarded-upstream", 0))
    client = anthropic.Anthropic(base_url=proxy_url, api_key=alice_key, max_retries=0)
    message = client.messages.create(
        model="guarded", max_tokens=100, messages=[{"role": "user", "content": PROMPT}]
    )
    sent = fake_upstream.stats()["last_bodies"]["guarded-upstream"]["messages"][-1]["content"]
    assert EMAIL not in str(sent) and "[EMAIL_1]" in str(sent)
    assert EMAIL in message.content[0].text and CARD in message.content[0].text


def test_block_mode_is_anthropics_400_on_the_messages_api(proxy_url, alice_key, org_a):
    import anthropic

    services.organization_guardrails_update(organization=org_a, pii_mode="block", actor=None)
    client = anthropic.Anthropic(base_url=proxy_url, api_key=alice_key, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": PROMPT}]
        )
    assert refused.value.body["type"] == "error"
    assert "EMAIL" in refused.value.body["error"]["message"]


def test_a_stream_hitting_a_deny_rule_ends_with_content_filter_before_the_phrase(
    proxy_url, alice_key, org_a, split_model
):
    services.guardrail_rule_create(
        organization=org_a, name="no-cards", pattern="about card", target="response", actor=None
    )
    stream = sdk(proxy_url, alice_key).chat.completions.create(
        model="split-model",
        messages=[{"role": "user", "content": "Write about card numbers"}],
        stream=True,
    )
    chunks = [c for c in stream if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Echo: Write "
    assert chunks[-1].choices[0].finish_reason == "content_filter"
