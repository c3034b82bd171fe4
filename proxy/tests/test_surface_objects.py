"""Files and batches records: the database's failures are 503s, ids are the proxy's own."""

from __future__ import annotations

import asyncio

import pytest
from django.db import OperationalError

from common.errors import ServiceUnavailable
from proxy.surface import objects


def test_a_database_failure_is_a_503_not_a_500():
    def failing():
        raise OperationalError("connection refused")

    with pytest.raises(ServiceUnavailable):
        asyncio.run(objects._db(failing))


def test_public_ids_are_random_and_look_like_openais():
    first, second = objects.new_public_id(objects.FILE_PREFIX), objects.new_public_id("file-syn")
    assert first.startswith("file-syn") and len(first) == len("file-syn") + 24
    assert first != second
