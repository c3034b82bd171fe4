"""Versions written at the same moment get distinct, consecutive numbers."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from prompts import services
from prompts.models import Prompt, PromptVersion

WRITERS = 6


@pytest.mark.django_db(transaction=True)
def test_concurrent_versions_are_numbered_without_gaps_or_duplicates(greeting, alice):
    barrier = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def write(index: int) -> None:
        try:
            prompt = Prompt.objects.get(pk=greeting.pk)
            barrier.wait()
            services.prompt_version_create(
                prompt=prompt,
                messages=[{"role": "user", "content": f"writer {index}"}],
                actor=alice,
            )
        except BaseException as error:  # reported by the assertion below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    numbers = sorted(PromptVersion.objects.filter(prompt=greeting).values_list("number", flat=True))
    assert numbers == list(range(1, WRITERS + 3))
