"""The surface endpoints passed through to an OpenAI-compatible upstream over HTTP, and
their failures: an upstream error, a budget, a provider without the endpoint."""

from __future__ import annotations

import json

import openai
import pytest

from billing import services as billing_services
from billing.models import UsageEvent
from proxy.models import Deployment, ModelRoute
from proxy.tests import surface_support
from proxy.tests.test_files_batches_e2e import batch_file, jsonl
from proxy.tests.test_openai_sdk_e2e import sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

# This module's proxy reads prices afresh, and each test writes the prices it checks.
proxy_url = surface_support.proxy_url
unit_prices = surface_support.unit_prices


def test_moderation_and_images_reach_the_upstream_under_the_routes_model(
    proxy_url, alice_key, route_to, fake_upstream
):
    route_to("house-moderation", ("omni-moderation-latest", 0))
    route_to("house-images", ("dall-e-3", 0))
    client = sdk(proxy_url, alice_key)
    raw = client.moderations.with_raw_response.create(
        model="house-moderation", input="an example [flag:hate]"
    )
    moderation = raw.parse()
    assert moderation.model == "omni-moderation-latest"
    assert moderation.results[0].categories.hate is True
    images = client.images.generate(model="house-images", prompt="a bridge", n=1)
    assert images.data[0].b64_json
    requests = fake_upstream.stats()["requests"]
    assert requests["/v1/moderations omni-moderation-latest"] >= 1
    assert requests["/v1/images/generations dall-e-3"] >= 1
    event = wait_for_usage(raw.headers["x-request-id"])
    assert (event.provider, event.upstream_model) == ("openai", "omni-moderation-latest")


def test_speech_and_transcription_pass_through_binary_and_multipart(
    proxy_url, alice_key, route_to, fake_upstream
):
    route_to("house-tts", ("tts-1", 0))
    route_to("house-whisper", ("whisper-1", 0))
    client = sdk(proxy_url, alice_key)
    with client.audio.speech.with_streaming_response.create(
        model="house-tts", voice="alloy", input="over the wire"
    ) as response:
        audio = response.read()
    assert audio[:4] == b"RIFF"
    text = client.audio.transcriptions.create(
        model="house-whisper", file=("wire.wav", audio, "audio/wav"), response_format="text"
    )
    assert text.strip() == "over the wire"
    requests = fake_upstream.stats()["requests"]
    assert requests["/v1/audio/speech tts-1"] >= 1
    assert requests["/v1/audio/transcriptions whisper-1"] >= 1


def test_a_batch_passes_through_with_the_upstream_model_in_its_lines(
    proxy_url, alice_key, route_to, fake_upstream
):
    route_to("house-batch", ("gpt-4o-mini", 0))
    client = sdk(proxy_url, alice_key)
    uploaded = client.files.create(
        file=("batch.jsonl", batch_file("house-batch", 2)), purpose="batch"
    )
    sent = jsonl(client.files.content(uploaded.id).content)
    assert {line["body"]["model"] for line in sent} == {"gpt-4o-mini"}
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.model == "house-batch"
    results = jsonl(client.files.content(done.output_file_id).content)
    assert len(results) == 2
    event = wait_for_usage(f"batch:{batch.id}")
    assert (event.model, event.upstream_model, event.provider) == (
        "house-batch",
        "gpt-4o-mini",
        "openai",
    )
    assert event.batch is True and event.cost_micros > 0
    requests = fake_upstream.stats()["requests"]
    assert requests["/v1/files -files"] >= 1
    assert requests["/v1/batches -batches"] >= 1


def test_an_upstream_failure_is_an_openai_error_and_still_a_usage_event(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    with pytest.raises(openai.InternalServerError) as caught:
        client.moderations.with_raw_response.create(model="fake-fail-503", input="hello")
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_error"
    request_id = caught.value.response.headers["x-request-id"]
    event = wait_for_usage(request_id)
    assert (event.endpoint, event.status_code) == ("moderations", 502)


def test_an_image_over_the_budget_is_refused_with_insufficient_quota(proxy_url, alice_key, org_a):
    billing_services.budget_set(organization=org_a, monthly_limit_micros=30_000)
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(proxy_url, alice_key).images.generate(model="dall-e-3", prompt="too dear")
    assert caught.value.body["code"] == "insufficient_quota"
    assert not UsageEvent.objects.filter(endpoint="images.generations", status_code=200).exists()


def test_a_provider_without_the_endpoint_is_a_clear_400(
    proxy_url, alice_key, org_a, upstream_credential
):
    route = ModelRoute.objects.create(organization=org_a, public_name="claude-images")
    Deployment.objects.create(
        route=route, provider="anthropic", upstream_model="claude-sonnet-4", priority=0
    )
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(proxy_url, alice_key).images.generate(model="claude-images", prompt="x")
    assert "anthropic" in caught.value.body["message"]


def test_surface_responses_carry_the_rate_limit_headers(proxy_url, bob_key):
    # bob is a basic member: limited (an admin's defaults are unlimited, without headers).
    raw = sdk(proxy_url, bob_key).moderations.with_raw_response.create(input="hi")
    assert int(raw.headers["x-ratelimit-limit-requests"]) > 0
    listing = sdk(proxy_url, bob_key).files.with_raw_response.list()
    assert "x-ratelimit-remaining-requests" in listing.headers
    assert json.loads(listing.text)["object"] == "list"
