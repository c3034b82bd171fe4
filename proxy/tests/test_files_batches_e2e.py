"""Files and batches through a live proxy with the official openai SDK, on the fake."""

from __future__ import annotations

import json
import time

import openai
import pytest

from billing import pricing
from billing.models import UsageEvent
from billing.selectors import price_for
from billing.usage import usage_flush_run
from proxy.models import UpstreamBatch, UpstreamFile
from proxy.tests import surface_support
from proxy.tests.test_openai_sdk_e2e import sdk, wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

# This module's proxy reads prices afresh, and each test writes the prices it checks.
proxy_url = surface_support.proxy_url
unit_prices = surface_support.unit_prices


def batch_file(model: str = "gpt-4o-mini", count: int = 3) -> bytes:
    lines = [
        {
            "custom_id": f"request-{number}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": model,
                "messages": [{"role": "user", "content": f"Question number {number}"}],
            },
        }
        for number in range(count)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def test_file_upload_list_retrieve_content_and_delete(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    uploaded = client.files.create(file=("requests.jsonl", batch_file()), purpose="batch")
    assert uploaded.id.startswith("file-syn")
    assert uploaded.purpose == "batch"
    assert uploaded.filename == "requests.jsonl"
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert uploaded.id in [item.id for item in client.files.list()]
    assert uploaded.id in [item.id for item in client.files.list(purpose="batch")]
    assert uploaded.id not in [item.id for item in client.files.list(purpose="vision")]
    lines = jsonl(client.files.content(uploaded.id).content)
    assert [line["custom_id"] for line in lines] == ["request-0", "request-1", "request-2"]
    notes = client.files.create(file=("notes.txt", b"plain notes"), purpose="user_data")
    assert client.files.content(notes.id).content == b"plain notes"
    deleted = client.files.delete(notes.id)
    assert deleted.deleted is True and deleted.id == notes.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(notes.id)


def test_batch_runs_on_the_fake_and_is_accounted_once_at_batch_prices(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    uploaded = client.files.create(file=("batch.jsonl", batch_file()), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.id.startswith("batch_syn")
    assert batch.status == "validating"
    assert batch.input_file_id == uploaded.id
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.request_counts.total == 3 and done.request_counts.completed == 3
    assert done.output_file_id.startswith("file-syn")
    assert batch.id in [item.id for item in client.batches.list()]
    assert not UsageEvent.objects.filter(endpoint="batches").exists()  # not fetched yet

    results = jsonl(client.files.content(done.output_file_id).content)
    assert sorted(line["custom_id"] for line in results) == [
        "request-0",
        "request-1",
        "request-2",
    ]
    answers = [line["response"]["body"] for line in results]
    assert all("Question number" in body["choices"][0]["message"]["content"] for body in answers)
    prompt = sum(body["usage"]["prompt_tokens"] for body in answers)
    completion = sum(body["usage"]["completion_tokens"] for body in answers)

    event = wait_for_usage(f"batch:{batch.id}")
    assert event.endpoint == "batches" and event.batch is True
    assert (event.prompt_tokens, event.completion_tokens) == (prompt, completion)
    price = price_for("gpt-4o-mini", event.created_at)
    tokens = pricing.TokenCounts(prompt_tokens=prompt, completion_tokens=completion)
    full = pricing.request_cost_micros(price=price, tokens=tokens)
    assert event.cost_micros == pricing.request_cost_micros(price=price, tokens=tokens, batch=True)
    assert event.cost_micros * 2 == pytest.approx(full, abs=2)

    client.files.content(done.output_file_id)  # fetched again: no second event
    time.sleep(0.5)
    usage_flush_run()
    assert UsageEvent.objects.filter(endpoint="batches").count() == 1
    assert UpstreamBatch.objects.get(public_id=batch.id).accounted_at is not None


def test_a_batch_not_run_yet_can_be_cancelled(proxy_url, alice_key):
    client = sdk(proxy_url, alice_key)
    uploaded = client.files.create(file=("batch.jsonl", batch_file(count=1)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status == "cancelled"
    assert client.batches.retrieve(batch.id).status == "cancelled"


def test_another_organizations_files_and_batches_are_404(proxy_url, alice_key, charlie_key):
    alice, charlie = sdk(proxy_url, alice_key), sdk(proxy_url, charlie_key)
    uploaded = alice.files.create(file=("batch.jsonl", batch_file(count=1)), purpose="batch")
    batch = alice.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    for attempt in (
        lambda: charlie.files.retrieve(uploaded.id),
        lambda: charlie.files.content(uploaded.id),
        lambda: charlie.files.delete(uploaded.id),
        lambda: charlie.batches.retrieve(batch.id),
        lambda: charlie.batches.cancel(batch.id),
        lambda: charlie.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert uploaded.id not in [item.id for item in charlie.files.list()]
    assert batch.id not in [item.id for item in charlie.batches.list()]
    assert UpstreamFile.objects.filter(public_id=uploaded.id).exists()  # untouched
    assert alice.batches.retrieve(batch.id).status == "completed"


def test_a_batch_file_with_two_models_is_refused_at_upload(proxy_url, alice_key):
    mixed = batch_file("gpt-4o-mini", 1) + batch_file("gpt-4o", 1).replace(
        b"request-0", b"request-9"
    )
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(proxy_url, alice_key).files.create(file=("mixed.jsonl", mixed), purpose="batch")
    assert "Line 2" in caught.value.body["message"]


def test_a_batch_of_a_model_the_key_may_not_use_is_refused(proxy_url, alice_key, org_a):
    from accounts.models import ApiKey

    ApiKey.objects.filter(organization=org_a).update(allowed_models=["gpt-4o-mini"])
    with pytest.raises(openai.PermissionDeniedError):
        sdk(proxy_url, alice_key).files.create(
            file=("batch.jsonl", batch_file("gpt-4o")), purpose="batch"
        )


def test_results_fetched_concurrently_are_accounted_once(proxy_url, alice_key):
    from concurrent.futures import ThreadPoolExecutor

    client = sdk(proxy_url, alice_key)
    uploaded = client.files.create(file=("batch.jsonl", batch_file(count=2)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    output_id = client.batches.retrieve(batch.id).output_file_id

    def fetch(_):
        return sdk(proxy_url, alice_key).files.content(output_id).content

    with ThreadPoolExecutor(max_workers=6) as pool:
        contents = list(pool.map(fetch, range(6)))
    assert len(set(contents)) == 1
    wait_for_usage(f"batch:{batch.id}")
    time.sleep(0.5)
    usage_flush_run()
    assert UsageEvent.objects.filter(endpoint="batches").count() == 1


def test_a_batch_that_does_not_fit_the_budget_is_refused_at_creation(proxy_url, alice_key, org_a):
    from billing import services as billing_services

    client = sdk(proxy_url, alice_key)
    uploaded = client.files.create(file=("batch.jsonl", batch_file(count=3)), purpose="batch")
    billing_services.budget_set(organization=org_a, monthly_limit_micros=10)
    with pytest.raises(openai.RateLimitError) as caught:
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert caught.value.body["code"] == "insufficient_quota"
    assert not UpstreamBatch.objects.exists()
