"""The API's URLs through Django's full middleware stack (as WSGI and serverless serve them)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.urls import resolve

from proxy import gateway, views


@pytest.mark.django_db(transaction=True)
def test_api_posts_need_no_csrf_token_even_where_csrf_is_enforced(alice_key):
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})
    headers = {"Authorization": f"Bearer {alice_key}", "x-synthlang-cache": "off"}

    async def post():
        client = AsyncClient(enforce_csrf_checks=True)
        response = await client.post(
            "/v1/chat/completions", data=body, content_type="application/json", headers=headers
        )
        await asyncio.gather(*list(gateway._background))
        return response

    response = async_to_sync(post)()
    assert response.status_code == 200, response.content
    assert response.json()["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("path", "view_class"),
    [
        ("/v1/chat/completions", views.ChatCompletionsView),
        ("/v1/completions", views.CompletionsView),
        ("/v1/embeddings", views.EmbeddingsView),
        ("/v1/models", views.ModelsView),
        ("/v1/models/gpt-4o", views.ModelDetailView),
    ],
)
def test_api_paths_resolve_to_their_views(path, view_class):
    assert resolve(path).func.view_class is view_class


def _post_chat(key: str, content: str):
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
    headers = {
        "Authorization": f"Bearer {key}",
        "x-synthlang-cache": "off",
        "x-synthlang-compression": "off",
    }

    async def post():
        response = await AsyncClient().post(
            "/v1/chat/completions", data=body, content_type="application/json", headers=headers
        )
        await asyncio.gather(*list(gateway._background))
        return response

    return async_to_sync(post)()


@pytest.mark.django_db(transaction=True)
def test_a_body_over_djangos_default_limit_is_served(alice_key):
    # Three megabytes: a chat request with an image or two in base64.
    response = _post_chat(alice_key, "a" * (3 * 1024 * 1024))
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
def test_a_body_over_the_limit_is_a_413_in_openais_format(alice_key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    response = _post_chat(alice_key, "a" * (2 * 1024 * 1024))
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request_too_large"
    assert error["type"] == "invalid_request_error"
    assert "1 MB" in error["message"]
