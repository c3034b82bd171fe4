"""The pii and rules stages, driven through their hooks as the pipeline calls them."""

import asyncio
import copy
from types import SimpleNamespace

import pytest
from django.db import OperationalError
from prometheus_client import REGISTRY

from accounts.models import ApiKey
from accounts.selectors import principal_for_key
from common.errors import InvalidRequest, ServiceUnavailable
from guardrails import selectors, services
from guardrails.errors import ContentBlocked, PiiDetected
from guardrails.stages import PIIStage, RulesStage

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "jane@example.com"
CARD = "4111 1111 1111 1111"
BODY = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": f"Mail {EMAIL} about card {CARD}."}],
}


def make_call(key: str, body=BODY, headers=None):
    return SimpleNamespace(
        principal=principal_for_key(key),
        body=body,
        model=body["model"],
        headers=headers or {},
        stage_state={},
        annotations={},
    )


def run(coroutine):
    return asyncio.run(coroutine)


def _run_request(stage, call):
    run(stage.prepare(call))
    return run(stage.on_request(call))


def _answer(content):
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
    }


def _findings(kind, action):
    value = REGISTRY.get_sample_value(
        "synthlang_guardrail_pii_findings_total", {"kind": kind, "action": action}
    )
    return value or 0.0


def test_mask_mode_sends_placeholders_upstream_and_restores_the_answer(org_a, alice_key):
    services.organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    stage = PIIStage()
    client_body = copy.deepcopy(BODY)
    call = make_call(alice_key, client_body)
    before = _findings("EMAIL", "masked")
    assert _run_request(stage, call) is None
    assert call.body["messages"][0]["content"] == "Mail [EMAIL_1] about card [CREDIT_CARD_1]."
    assert client_body == BODY
    assert call.annotations["pii"] == {"mode": "mask", "email": 1, "credit_card": 1}
    assert _findings("EMAIL", "masked") == before + 1
    answer = run(stage.on_response(call, _answer("Done: [EMAIL_1], [CREDIT_CARD_1].")))
    assert answer["choices"][0]["message"]["content"] == f"Done: {EMAIL}, {CARD}."


def test_off_by_default_leaves_the_request_alone(org_a, alice_key):
    stage = PIIStage()
    call = make_call(alice_key)
    _run_request(stage, call)
    assert call.body is BODY
    assert stage.stream_filter(call) is None
    assert "pii" not in call.annotations


def test_block_mode_refuses_naming_kinds_never_values(org_a, alice_key):
    services.organization_guardrails_update(organization=org_a, pii_mode="block", actor=None)
    call = make_call(alice_key)
    with pytest.raises(PiiDetected) as refused:
        _run_request(PIIStage(), call)
    assert refused.value.status == 400
    assert "CREDIT_CARD" in refused.value.message and "EMAIL" in refused.value.message
    assert EMAIL not in refused.value.message and "4111" not in refused.value.message
    assert call.annotations["pii"]["blocked"] is True


def test_block_mode_lets_clean_requests_through(org_a, alice_key):
    services.organization_guardrails_update(organization=org_a, pii_mode="block", actor=None)
    clean = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello there"}]}
    call = make_call(alice_key, clean)
    assert _run_request(PIIStage(), call) is None
    assert call.body is clean


def test_a_key_setting_tightens_its_organization_setting(org_a, alice_key, bob_key):
    services.organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    alice_api_key = ApiKey.objects.get(user__username="alice")
    services.api_key_guardrails_update(api_key=alice_api_key, pii_mode="block", actor=None)
    with pytest.raises(PiiDetected):
        _run_request(PIIStage(), make_call(alice_key))
    bob_call = make_call(bob_key)
    _run_request(PIIStage(), bob_call)
    assert "[EMAIL_1]" in bob_call.body["messages"][0]["content"]


def test_a_key_setting_cannot_loosen_its_organization_setting(org_a, alice_key):
    services.organization_guardrails_update(organization=org_a, pii_mode="block", actor=None)
    alice_api_key = ApiKey.objects.get(user__username="alice")
    services.api_key_guardrails_update(api_key=alice_api_key, pii_mode="off", actor=None)
    with pytest.raises(PiiDetected):
        _run_request(PIIStage(), make_call(alice_key))


def test_the_header_tightens_but_never_loosens(org_a, alice_key):
    call = make_call(alice_key, headers={"x-synthlang-pii": "mask"})
    _run_request(PIIStage(), call)
    assert "[EMAIL_1]" in call.body["messages"][0]["content"]

    services.organization_guardrails_update(organization=org_a, pii_mode="block", actor=None)
    with pytest.raises(PiiDetected):
        _run_request(PIIStage(), make_call(alice_key, headers={"x-synthlang-pii": "off"}))


def test_an_invalid_header_value_is_a_400(org_a, alice_key):
    with pytest.raises(InvalidRequest) as refused:
        _run_request(PIIStage(), make_call(alice_key, headers={"x-synthlang-pii": "maybe"}))
    assert refused.value.status == 400 and refused.value.param == "x-synthlang-pii"


def test_one_organizations_setting_does_not_reach_another(org_a, org_b, alice_key, charlie_key):
    services.organization_guardrails_update(organization=org_a, pii_mode="block", actor=None)
    call = make_call(charlie_key)
    assert _run_request(PIIStage(), call) is None
    assert call.body is BODY


def test_stream_filter_restores_a_placeholder_split_across_chunks(org_a, alice_key):
    services.organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    stage = PIIStage()
    call = make_call(alice_key)
    _run_request(stage, call)
    stream = stage.stream_filter(call)
    out = []
    for piece in ["To [EMA", "IL_1] ok"]:
        out += stream.feed({"choices": [{"index": 0, "delta": {"content": piece}}]})
    out += stream.close()
    assert "".join(c["choices"][0]["delta"]["content"] for c in out) == f"To {EMAIL} ok"


def test_database_down_serves_the_policy_read_recently(org_a, alice_key, monkeypatch):
    services.organization_guardrails_update(organization=org_a, pii_mode="block", actor=None)
    call = make_call(alice_key)
    with pytest.raises(PiiDetected):
        _run_request(PIIStage(), call)
    cache_key = (call.principal.organization_id, call.principal.key_id)
    fresh, policy = selectors._policy_cache.get_fresh(cache_key)
    assert fresh
    selectors._policy_cache.put(cache_key, policy, ttl=-1)  # expired: the next read is a load
    attempts = []

    def down(*args):
        attempts.append(args)
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "_policy_from_db", down)
    with pytest.raises(PiiDetected):
        _run_request(PIIStage(), make_call(alice_key))
    assert attempts  # the database was tried, and its outage did not open the gate


def test_database_down_with_no_policy_known_is_a_503(org_a, alice_key, monkeypatch):
    call = make_call(alice_key)

    def down(*args):
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "_policy_from_db", down)
    with pytest.raises(ServiceUnavailable) as refused:
        _run_request(PIIStage(), call)
    assert refused.value.status == 503


def test_redis_down_does_not_touch_the_policy_lookup(org_a, alice_key, settings):
    services.organization_guardrails_update(organization=org_a, pii_mode="mask", actor=None)
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    call = make_call(alice_key)
    _run_request(PIIStage(), call)
    assert "[EMAIL_1]" in call.body["messages"][0]["content"]


def _rule(org, name, pattern, **extra):
    return services.guardrail_rule_create(
        organization=org, name=name, pattern=pattern, actor=None, **extra
    )


def test_a_deny_rule_blocks_the_request(org_a, alice_key):
    _rule(org_a, "codename", "project falcon", target="request")
    body = {"model": "m", "messages": [{"role": "user", "content": "Status of Project Falcon?"}]}
    call = make_call(alice_key, body)
    with pytest.raises(ContentBlocked) as refused:
        _run_request(RulesStage(), call)
    assert refused.value.status == 400 and "codename" in refused.value.message
    assert call.annotations["rules"] == {"blocked": "request", "rule": "codename"}


def test_a_deny_rule_withholds_the_answer(org_a, alice_key):
    _rule(org_a, "leak", r"internal-\d+", kind="regex", target="response")
    stage = RulesStage()
    call = make_call(alice_key, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    _run_request(stage, call)
    assert run(stage.on_response(call, _answer("fine"))) == _answer("fine")
    with pytest.raises(ContentBlocked):
        run(stage.on_response(call, _answer("see internal-42")))


def test_a_stream_stops_where_the_denied_text_starts(org_a, alice_key):
    _rule(org_a, "leak", "top secret", target="response")
    stage = RulesStage()
    call = make_call(alice_key, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    _run_request(stage, call)
    stream = stage.stream_filter(call)
    out = []
    for piece in ["This is to", "p sec", "ret stuff", " and more"]:
        out += stream.feed({"choices": [{"index": 0, "delta": {"content": piece}}]})
    usage = {"choices": [], "usage": {"completion_tokens": 9}}
    out += stream.feed(usage)
    text = "".join(c["choices"][0]["delta"]["content"] for c in out if c["choices"])
    assert text == "This is "  # the phrase's first half was held back, never sent
    assert [c["choices"][0].get("finish_reason") for c in out if c["choices"]][-1] == (
        "content_filter"
    )
    assert out[-1] is usage


def test_an_invalid_pattern_is_refused_by_the_service(org_a):
    with pytest.raises(InvalidRequest) as refused:
        _rule(org_a, "bad", r"(a+)+$", kind="regex")
    assert refused.value.param == "pattern"


def test_a_clean_stream_reads_whole_once_it_finishes(org_a, alice_key):
    _rule(org_a, "leak", "top secret", target="response")
    stage = RulesStage()
    call = make_call(alice_key, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    _run_request(stage, call)
    stream = stage.stream_filter(call)
    out = []
    for piece in ["All ", "fine ", "here"]:
        out += stream.feed({"id": "x", "choices": [{"index": 0, "delta": {"content": piece}}]})
    out += stream.feed({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out += stream.close()
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in out) == "All fine here"
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        ((), "off"),
        (("", ""), "off"),
        (("off", "mask"), "mask"),
        (("block", "mask"), "block"),  # a header can tighten, never loosen
        (("mask", "block", "off"), "block"),
        (("", "mask"), "mask"),
    ],
)
def test_strictest_mode_wins(modes, expected):
    assert selectors.strictest(*modes) == expected


def test_strictest_refuses_an_unknown_mode():
    with pytest.raises(KeyError):
        selectors.strictest("mask", "loud")
