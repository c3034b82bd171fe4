"""After rotating ENCRYPTION_KEY, a proxy that knows only the new key still reaches the
upstream with each organization's own provider key."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import openai
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command

from accounts import services
from common.testing import free_port, live_server, wait_for_http
from proxy.models import Deployment, ModelRoute

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def open_upstream(tmp_path):
    """A fake upstream that accepts any key and reports the last four of each it saw."""
    port = free_port()
    with open(tmp_path / "upstream.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy.fake_upstream", "--port", str(port)],
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/_stats", process=process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_rotated_keys_still_reach_the_upstream_with_each_organizations_key(
    open_upstream, org_a, org_b, alice_key, charlie_key, tmp_path
):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    provider_keys = {org_a: "sk-org-a-upstream-AAA1", org_b: "sk-org-b-upstream-BBB2"}
    for organization, key in provider_keys.items():
        credential = services.provider_credential_set(
            organization=organization,
            provider="openai",
            key=key,
            base_url=f"{open_upstream}/v1",
            actor=None,
        )
        route = ModelRoute.objects.create(organization=organization, public_name="own-key")
        Deployment.objects.create(
            route=route, provider="openai", credential=credential, upstream_model="gpt-4o-mini"
        )

    settings.ENCRYPTION_KEYS = [new, old]
    call_command("rotate_encryption_key")

    with live_server(env={"ENCRYPTION_KEY": new}, log_path=tmp_path / "proxy.log") as url:
        for key in (alice_key, charlie_key):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
            reply = client.chat.completions.create(
                model="own-key",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-synthlang-cache": "off"},
            )
            assert reply.model == "gpt-4o-mini"
    with urllib.request.urlopen(f"{open_upstream}/_stats", timeout=5) as response:
        seen = json.loads(response.read())["keys_seen"]
    assert seen == {"AAA1": 1, "BBB2": 1}
