"""Requests the fuzzer found answered with a 500, kept as fixed cases."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

HUGE = 10**60

FOUND = [
    ("/v1/embeddings", {"input": ["a", 5, [1, 2]]}),  # mixed kinds in one list
    ("/v1/embeddings", {"input": [0, -HUGE]}),
    ("/v1/embeddings", {"input": [[1, 2], 3]}),
    ("/v1/embeddings", {"input": [True]}),
    ("/v1/completions", {"prompt": ["Once", 7]}),
    ("/v1/completions", {"prompt": [[1, 2], []]}),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("path", "body"), FOUND)
def test_a_body_the_fuzzer_found_is_a_400(settings, alice_key, path, body):
    settings.OPENAI_API_KEY = ""  # the offline fake provider would answer a valid body

    async def post():
        return await AsyncClient().post(
            path,
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {alice_key}"},
        )

    response = async_to_sync(post)()
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    field = "input" if path.endswith("embeddings") else "prompt"
    assert (error["type"], error["param"]) == ("invalid_request_error", field)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/embeddings", {"input": ["one", "two"]}),
        ("/v1/embeddings", {"input": [1, 2, 3]}),
        ("/v1/embeddings", {"input": [[1, 2], [3]]}),
        ("/v1/completions", {"prompt": [[1, 2], [3]]}),
    ],
)
def test_each_list_form_openai_takes_is_still_answered(settings, alice_key, path, body):
    settings.OPENAI_API_KEY = ""

    async def post():
        return await AsyncClient().post(
            path,
            data=json.dumps({"model": "gpt-4o-mini", **body}),
            content_type="application/json",
            headers={"Authorization": f"Bearer {alice_key}", "x-synthlang-cache": "off"},
        )

    assert async_to_sync(post)().status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("end", ["0001-01-01", "0001-01-29", "9999-12-31"])
def test_usage_up_to_the_first_or_last_day_of_the_calendar_is_answered(alice_client, end):
    # The default start is 29 days before the end, which year one does not have.
    response = alice_client.get("/api/usage", {"end": end})
    assert response.status_code == 200, response.content
    assert response.json()["end"] == end
