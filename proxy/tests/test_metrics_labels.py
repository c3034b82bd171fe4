"""/metrics stays bounded and private: labels from known values only, and a token."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from accounts import services
from proxy import gateway, metrics
from proxy.models import Deployment, ModelRoute

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello"}]


def _series() -> set[tuple]:
    return set(metrics.REQUESTS._metrics) | {("tokens", *key) for key in metrics.TOKENS._metrics}


def _post_many(requests: list[tuple[str, str]], *, batch: int = 50) -> list[int]:
    """POST each (key, model) chat request; returns the statuses."""

    async def run():
        client = AsyncClient()
        statuses = []
        for start in range(0, len(requests), batch):
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/v1/chat/completions",
                        data=json.dumps({"model": model, "messages": HELLO, "max_tokens": 3}),
                        content_type="application/json",
                        headers={
                            "Authorization": f"Bearer {key}",
                            "x-synthlang-cache": "off",
                            "x-synthlang-compression": "off",
                        },
                    )
                    for key, model in requests[start : start + batch]
                )
            )
            await asyncio.gather(*list(gateway._background))
            statuses.extend(response.status_code for response in responses)
        return statuses

    return async_to_sync(run)()


def test_five_thousand_invented_model_names_add_no_series(settings, org_a, alice, alice_key):
    settings.OPENAI_API_KEY = ""  # the offline fake provider answers any model
    _restricted, restricted_key = services.api_key_create(
        organization=org_a, user=alice, allowed_models=["gpt-4o"], actor=alice
    )
    metrics.known_models.refresh()
    # The "other" series of a served and of a refused request exist before counting.
    _post_many([(alice_key, "invented-first"), (restricted_key, "invented-second")])
    before = _series()

    invented = [f"invented-{uuid.uuid4().hex[:12]}" for _ in range(5000)]
    # Half refused (the key may not use them), half served by the fake provider.
    statuses = _post_many(
        [(restricted_key if i % 2 else alice_key, name) for i, name in enumerate(invented)]
    )

    assert statuses.count(403) == 2500 and statuses.count(200) == 2500
    new = _series() - before
    assert new == set(), new
    exposed = metrics.REQUESTS._metric  # the exposition holds none of the names either
    text = "\n".join(str(key) for key in exposed._metrics)
    assert not any(name in text for name in invented[:50])


def test_a_known_route_keeps_its_own_label(settings, org_a, alice_key):
    settings.OPENAI_API_KEY = ""
    route = ModelRoute.objects.create(organization=org_a, public_name="smart-model")
    Deployment.objects.create(route=route, provider="fake", upstream_model="gpt-4o")
    metrics.known_models.refresh()
    statuses = _post_many([(alice_key, "smart-model")])
    assert statuses == [200]
    assert any(key[1] == "smart-model" for key in metrics.REQUESTS._metrics)


def test_endpoint_and_status_labels_are_bounded():
    assert metrics.endpoint_label("chat.completions") == "chat.completions"
    assert metrics.endpoint_label("/v1/../anything") == "other"
    assert metrics.status_label(503) == "503"
    assert metrics.status_label("9999") == "other"


def test_labelled_children_are_the_metrics_own_whatever_the_order():
    counter = metrics.REQUESTS
    child = counter.labels(endpoint="chat.completions", model="", status=200)
    again = counter.labels(status="200", model="", endpoint="chat.completions")
    assert again is child  # kept, and the same whichever order the labels come in
    assert child is counter._metric.labels(endpoint="chat.completions", model="", status="200")
    before = child._value.get()
    again.inc()
    assert counter._metric.labels("chat.completions", "", "200")._value.get() == before + 1


def test_kept_children_still_pass_through_the_bounds():
    # The bound runs on every call: a name that is not known is counted as "other".
    made_up = f"made-up-{uuid.uuid4().hex}"
    child = metrics.TOKENS.labels(direction="prompt", model=made_up)
    assert child is metrics.TOKENS.labels(direction="prompt", model="other")
    assert ("prompt", made_up) not in metrics.TOKENS._metrics


def test_metrics_are_open_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


def test_metrics_need_the_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert response.status_code == 200
    assert b"synthlang_requests_total" in response.content or b"python_info" in response.content
