import pytest

from prompts import services
from proxy.tests.conftest import (  # noqa: F401 - the live server and routes to the fake
    fake_upstream,
    live_db,
    proxy_url,
    route_to,
    upstream_credential,
)

GREETING_V1 = [
    {"role": "system", "content": "You are a {{tone}} assistant."},
    {"role": "user", "content": "Greet {{name}} warmly"},
]
GREETING_V2 = [
    {"role": "system", "content": "You are a {{tone}} assistant. Be brief."},
    {"role": "user", "content": "Say hi to {{name}} from the v2 prompt"},
]


@pytest.fixture
def greeting(org_a, alice):
    """Prompt 'greeting' of org_a: v1 (production), v2 (staging, a model of its own)."""
    prompt = services.prompt_create(organization=org_a, name="greeting", actor=alice)
    services.prompt_version_create(
        prompt=prompt,
        messages=GREETING_V1,
        parameters={"temperature": 0.2},
        commit_message="first",
        labels=("production",),
        actor=alice,
    )
    services.prompt_version_create(
        prompt=prompt,
        messages=GREETING_V2,
        model="gpt-4o-mini",
        commit_message="shorter",
        labels=("staging",),
        actor=alice,
    )
    return prompt
