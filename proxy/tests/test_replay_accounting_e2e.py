"""A cached answer replayed as a stream is accounted however the client reads it: to the
end, or leaving at the first event, on chat, Responses and Messages alike."""

from __future__ import annotations

import httpx
import pytest

from proxy.tests.test_openai_sdk_e2e import wait_for_usage

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

QUESTION = "Name three rivers of France, please."
BODIES = {
    "/v1/chat/completions": {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": QUESTION}],
    },
    "/v1/responses": {"model": "gpt-4o", "input": QUESTION, "store": False},
    "/v1/messages": {
        "model": "gpt-4o",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": QUESTION}],
    },
}


@pytest.mark.parametrize("leave_early", [False, True], ids=["read-all", "leave-at-first-event"])
@pytest.mark.parametrize("path", sorted(BODIES))
def test_a_replayed_stream_is_accounted_as_a_hit(proxy_url, alice_key, path, leave_early):
    headers = {"Authorization": f"Bearer {alice_key}", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=proxy_url, headers=headers, timeout=30) as http:
        first = http.post(path, json=BODIES[path])
        assert first.status_code == 200 and first.headers["x-synthlang-cache"] == "miss"
        wait_for_usage(first.headers["x-request-id"])  # stored once the answer was accounted
        with http.stream("POST", path, json={**BODIES[path], "stream": True}) as replay:
            assert replay.headers["x-synthlang-cache"] == "hit"
            request_id = replay.headers["x-request-id"]
            lines = 0
            for line in replay.iter_lines():
                lines += bool(line)
                if leave_early and lines == 1:
                    break

    event = wait_for_usage(request_id)
    assert event.cache == "hit" and event.status_code == 200
    assert event.completion_tokens > 0 and event.cost_micros == 0
