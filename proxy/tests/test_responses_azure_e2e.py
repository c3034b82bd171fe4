"""The Responses API to an Azure OpenAI route: translated to Azure's chat deployments (the
fake upstream serves Azure's path, query string and key header), through the official
openai SDK against a real proxy."""

from __future__ import annotations

import pytest

from accounts import services
from proxy.models import Deployment, ModelRoute
from proxy.providers.openai import AZURE_DEFAULT_API_VERSION
from proxy.tests.conftest import UPSTREAM_KEY
from proxy.tests.test_openai_sdk_e2e import sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

DEPLOYMENT = "contoso-gpt-4o"


@pytest.fixture
def azure_route(live_db, org_a, fake_upstream):
    credential = services.provider_credential_set(
        organization=org_a,
        provider="azure",
        key=UPSTREAM_KEY,
        base_url=fake_upstream.base_url,  # Azure's is the resource's root, no /v1
        name="azure",
        actor=None,
    )
    route = ModelRoute.objects.create(organization=org_a, public_name="azure-4o")
    Deployment.objects.create(
        route=route, provider="azure", credential=credential, upstream_model=DEPLOYMENT
    )
    return route


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
