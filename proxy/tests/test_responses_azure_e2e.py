"""The Responses API to an Azure OpenAI route, through the official openai SDK against a
real proxy: passed through to Azure's v1 Responses surface by default, and translated to
the deployment's chat completions when the provider key says ``responses_api: false``
(the fake upstream serves both of Azure's paths, its query string and its key header)."""

from __future__ import annotations

import pytest

from accounts import services
from proxy.models import Deployment, ModelRoute
from proxy.providers.openai import AZURE_DEFAULT_API_VERSION
from proxy.tests.conftest import UPSTREAM_KEY
from proxy.tests.test_openai_sdk_e2e import sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

DEPLOYMENT = "contoso-gpt-4o"


def _azure_route(organization, base_url: str, public_name: str, options: dict | None):
    credential = services.provider_credential_set(
        organization=organization,
        provider="azure",
        key=UPSTREAM_KEY,
        base_url=base_url,  # Azure's is the resource's root, no /v1
        name=f"azure-{public_name}",
        options=options,
        actor=None,
    )
    route = ModelRoute.objects.create(organization=organization, public_name=public_name)
    Deployment.objects.create(
        route=route, provider="azure", credential=credential, upstream_model=DEPLOYMENT
    )
    return route


@pytest.fixture
def azure_route(live_db, org_a, fake_upstream):
    """A deployment whose model Azure serves through chat only: translated."""
    return _azure_route(org_a, fake_upstream.base_url, "azure-4o", {"responses_api": False})


@pytest.fixture
def azure_native_route(live_db, org_a, fake_upstream):
    fake_upstream.reset()
    return _azure_route(org_a, fake_upstream.base_url, "azure-native", None)


NATIVE_PATH = f"/openai/v1/responses {DEPLOYMENT}"


def test_a_response_to_an_azure_route_goes_to_azures_v1_responses_and_is_accounted(
    proxy_url, alice_key, azure_native_route, fake_upstream
):
    raw = sdk(proxy_url, alice_key).responses.with_raw_response.create(
        model="azure-native", input="Name a river in Spain", instructions="Be brief"
    )
    response = raw.parse()

    stats = fake_upstream.stats()
    assert stats["requests"].get(NATIVE_PATH) == 1
    assert not any("chat/completions" in path for path in stats["requests"])
    sent = stats["last_bodies"][DEPLOYMENT]
    assert sent == {
        "model": DEPLOYMENT,
        "input": "Name a river in Spain",
        "instructions": "Be brief",
        "store": False,  # the proxy keeps its own store
    }
    assert response.status == "completed" and "Spain" in response.output_text
    assert raw.headers["x-synthlang-cache"] == "off"  # passed through: no chat cache
    event = wait_for_usage(raw.headers["x-request-id"])
    assert (event.endpoint, event.provider, event.stream) == ("responses", "azure", False)
    assert event.usage_estimated is False
    assert event.prompt_tokens == response.usage.input_tokens > 0
    assert event.completion_tokens == response.usage.output_tokens > 0


def test_a_streamed_conversation_on_azures_v1_responses_sends_the_stored_history(
    proxy_url, alice_key, azure_native_route, fake_upstream
):
    client = sdk(proxy_url, alice_key)
    first = client.responses.create(model="azure-native", input="My name is Ada")
    with client.responses.stream(
        model="azure-native", input="What is my name?", previous_response_id=first.id
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
        request_id = stream._response.headers["x-request-id"]

    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert fake_upstream.stats()["requests"].get(NATIVE_PATH) == 2
    sent = fake_upstream.stats()["last_bodies"][DEPLOYMENT]
    assert sent["stream"] is True and sent["model"] == DEPLOYMENT
    assert sent["input"] == [
        {"type": "message", "role": "user", "content": "My name is Ada"},
        {"type": "message", "role": "assistant", "content": first.output_text},
        {"type": "message", "role": "user", "content": "What is my name?"},
    ]
    assert final.previous_response_id == first.id and final.output_text
    event = wait_for_usage(request_id)
    assert (event.provider, event.stream) == ("azure", True)
    assert event.completion_tokens == final.usage.output_tokens > 0


def test_a_response_to_an_azure_route_is_translated_to_its_chat_deployment(
    proxy_url, alice_key, azure_route, fake_upstream
):
    raw = sdk(proxy_url, alice_key).responses.with_raw_response.create(
        model="azure-4o", input="Name a river in Spain", instructions="Be brief", store=False
    )
    response = raw.parse()

    assert response.status == "completed" and response.output_text
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    sent = fake_upstream.stats()["last_bodies"][f"azure:{DEPLOYMENT}"]
    assert sent["_api_version"] == AZURE_DEFAULT_API_VERSION
    assert "model" not in sent and "input" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Be brief"}
    assert raw.headers["x-synthlang-cache"] == "miss"  # the chat pipeline ran, cache included
    event = wait_for_usage(raw.headers["x-request-id"])
    assert event.endpoint == "responses" and event.provider == "azure"
    assert event.completion_tokens == response.usage.output_tokens


def test_a_streamed_response_to_an_azure_route_completes_with_usage(
    proxy_url, alice_key, azure_route, fake_upstream
):
    events = list(
        sdk(proxy_url, alice_key).responses.create(
            model="azure-4o", input="Stream a few words please", stream=True, store=False
        )
    )

    types = [event.type for event in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas and deltas == final.output_text
    assert final.usage.output_tokens > 0
    assert fake_upstream.stats()["last_bodies"][f"azure:{DEPLOYMENT}"]["stream"] is True


def test_a_conversation_on_an_azure_route_continues_from_the_stored_turn(
    proxy_url, alice_key, azure_route, fake_upstream
):
    client = sdk(proxy_url, alice_key)
    first = client.responses.create(model="azure-4o", input="My name is Ada")
    second = client.responses.create(
        model="azure-4o", input="What is my name?", previous_response_id=first.id
    )

    assert second.previous_response_id == first.id and second.output_text
    sent = fake_upstream.stats()["last_bodies"][f"azure:{DEPLOYMENT}"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "My name is Ada"
