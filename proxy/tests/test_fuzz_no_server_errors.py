"""Fuzzing on a live server: generated requests never get a 5xx.

The management API is fuzzed by schemathesis from its own OpenAPI schema (``/api/schema/``),
valid and invalid requests alike, with an admin key. The ``/v1`` endpoints get a generated
corpus of malformed bodies (wrong types, huge numbers, NaN, nested junk, bad UTF-8, missing
fields, unknown content parts). Every answer below 500; every refusal in OpenAI's format.

The example counts here keep the run to a minute or two; ``FUZZ_EXAMPLES`` raises them for
a longer run (the README reports one).
"""

from __future__ import annotations

import json
import os
from collections import Counter

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from accounts import services
from common.testing import live_server

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def server(tmp_path):
    env = {"OPENAI_API_KEY": "", "KEY_LOOKUP_FAILURE_LIMIT": "1000000"}
    with live_server(env=env, log_path=tmp_path / "proxy.log") as url:
        yield url


class Keys:
    """An admin key for the fuzzer, replaced if a generated request revokes it."""

    def __init__(self, organization, user):
        self.organization, self.user = organization, user
        self.renew()

    def renew(self) -> None:
        _, self.key = services.api_key_create(
            organization=self.organization, user=self.user, actor=None
        )

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"}


def test_the_management_api_answers_generated_requests_without_a_5xx(server, org_a, alice):
    keys = Keys(org_a, alice)
    schema = schemathesis.openapi.from_url(f"{server}/api/schema/", headers=keys.headers)
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(generation_mode=mode))
    assert len(strategies) >= 8  # keys, key detail, revoke, members, usage: both modes
    failures = []
    statuses = Counter()

    @FUZZ_SETTINGS
    @given(case=st.one_of(strategies))
    def fuzz(case):
        response = case.call(base_url=server, headers=keys.headers)
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append((case.as_curl_command(), response.status_code, response.text[:300]))
        if response.status_code == 401:
            keys.renew()

    fuzz()
    print(f"management API: {sum(statuses.values())} requests, statuses {dict(statuses)}")
    assert failures == []
    # The fuzzer reached the operations themselves, not only the authentication.
    assert any(200 <= status < 300 for status in statuses)
    assert any(status in (400, 404) for status in statuses)


# --- /v1 bodies ------------------------------------------------------------------------------

JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
CONTENT_PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": JUNK}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": JUNK}),
    st.fixed_dictionaries({"type": st.text(max_size=12)}, optional={"text": JUNK}),
    JUNK,
)
MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "robot"])
        | JUNK,
        "content": st.text(max_size=60) | st.lists(CONTENT_PART, max_size=3) | JUNK,
        "name": JUNK,
        "tool_calls": JUNK,
        "tool_call_id": JUNK,
    },
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.sampled_from([0, -1, 2**31, 2**63, 1e308]),
    JUNK,
)
COMMON = {
    # Not the fake provider's staged failures (fake-fail-500): a 502 for an upstream that
    # failed is the right answer, not a bug.
    "model": st.sampled_from(["gpt-4o-mini", "", "gpt-4o", "x" * 300]) | JUNK,
    "stream": st.booleans() | JUNK,
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": JUNK}) | JUNK,
    "temperature": NUMBERS,
    "top_p": NUMBERS,
    "n": NUMBERS,
    "max_tokens": NUMBERS,
    "max_completion_tokens": NUMBERS,
    "seed": NUMBERS,
    "logit_bias": JUNK,
    "stop": JUNK,
    "user": JUNK,
    "tools": JUNK,
    "tool_choice": JUNK,
    "response_format": JUNK,
}
BODIES = {
    "/v1/chat/completions": st.fixed_dictionaries(
        {}, optional={**COMMON, "messages": st.lists(MESSAGE, max_size=4) | JUNK}
    ),
    "/v1/completions": st.fixed_dictionaries(
        {}, optional={**COMMON, "prompt": st.text(max_size=60) | JUNK}
    ),
    "/v1/embeddings": st.fixed_dictionaries(
        {},
        optional={
            "model": COMMON["model"],
            "input": st.text(max_size=60) | st.lists(st.text() | NUMBERS, max_size=4) | JUNK,
            "encoding_format": st.sampled_from(["float", "base64", "hex"]) | JUNK,
            "dimensions": NUMBERS,
        },
    ),
}


VALID = {
    "/v1/chat/completions": {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
    },
    "/v1/completions": {"model": "gpt-4o-mini", "prompt": "Once upon a time"},
    "/v1/embeddings": {"model": "text-embedding-3-small", "input": ["one", "two"]},
}


def _encode(body) -> bytes:
    # Python's encoder writes NaN, Infinity and 10**400 as such: the proxy must refuse them.
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


RAW = st.one_of(
    st.binary(max_size=80),  # bad UTF-8 and anything else
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
            b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e999}',
            b'{"messages": [{"role": "user", "content": "\\ud83d"}]}',
            b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}',
            b"{" * 5000 + b"}" * 5000,
        ]
    ),
)


@st.composite
def requests(draw):
    path = draw(st.sampled_from(sorted(BODIES)))
    if draw(st.integers(0, 4)) == 0:
        return path, draw(RAW)
    return path, _encode(draw(BODIES[path]))


def test_malformed_v1_bodies_never_get_a_5xx(server, alice_key):
    headers = {"Authorization": f"Bearer {alice_key}", "Content-Type": "application/json"}
    failures = []
    statuses = Counter()
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:

        @FUZZ_SETTINGS
        @given(request=requests())
        # Well-formed bodies too, every run: the assertions below then show the server
        # answered, not only refused.
        @example(request=("/v1/chat/completions", _encode(VALID["/v1/chat/completions"])))
        @example(request=("/v1/completions", _encode(VALID["/v1/completions"])))
        @example(request=("/v1/embeddings", _encode(VALID["/v1/embeddings"])))
        def fuzz(request):
            path, content = request
            response = client.post(path, content=content)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append((path, content[:300], response.status_code, response.text[:300]))
            elif response.status_code >= 400:
                error = response.json()["error"]
                assert {"message", "type", "param", "code"} <= set(error), response.text

        fuzz()
    print(f"/v1 bodies: {sum(statuses.values())} requests, statuses {dict(statuses)}")
    assert failures == []
    assert statuses[200] and statuses[400]  # both valid and refused bodies were generated
