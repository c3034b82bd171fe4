"""With warm caches, an authenticated proxy request runs no SQL at all."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.db.backends import utils as db_utils
from django.test import AsyncClient

from accounts.selectors import principal_for_key
from proxy import gateway


@pytest.fixture
def sql_counter(monkeypatch):
    """Counts statements from every thread (the proxy queries from pool threads)."""
    seen: list[str] = []
    original = db_utils.CursorWrapper.execute

    def counting_execute(self, sql, params=None):
        seen.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(db_utils.CursorWrapper, "execute", counting_execute)
    return seen


@pytest.mark.django_db
def test_warm_key_lookup_makes_no_query(alice_key, django_assert_num_queries):
    principal_for_key(alice_key)
    with django_assert_num_queries(0):
        principal_for_key(alice_key)


@pytest.mark.django_db(transaction=True)
def test_warm_chat_request_runs_no_sql(alice_key, sql_counter):
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]})
    headers = {"Authorization": f"Bearer {alice_key}", "x-synthlang-cache": "off"}

    async def two_requests():
        client = AsyncClient()
        first = await client.post(
            "/v1/chat/completions", data=body, content_type="application/json", headers=headers
        )
        await asyncio.gather(*list(gateway._background))
        sql_counter.clear()
        second = await client.post(
            "/v1/chat/completions", data=body, content_type="application/json", headers=headers
        )
        await asyncio.gather(*list(gateway._background))
        return first, second, list(sql_counter)

    first, second, statements = async_to_sync(two_requests)()
    assert first.status_code == 200 and second.status_code == 200
    assert statements == []
