"""No plaintext secret is ever at rest: not in the database, not in the log file."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import re

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey, ProviderCredential

pytestmark = pytest.mark.django_db

PLAINTEXT_KEY = re.compile(r"sk-syn-[A-Za-z0-9]{48}")
PROVIDER_KEYS = {
    "service": "sk-proj-service-stored-secret-0001",
    "command": "sk-proj-command-stored-secret-0002",
    "admin": "sk-ant-admin-entered-secret-0003",
    "platform": "sk-platform-wide-secret-0004",
}


def bearer(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.fixture
def secrets_everywhere(org_a, org_b, alice, bob, charlie, alice_key, bob_key, charlie_key):
    """Create keys and provider keys through every entry point; return every plaintext."""
    api_keys = [alice_key, bob_key, charlie_key]

    created = bearer(alice_key).post(
        "/api/keys/", {"name": "api-made", "user": "bob"}, format="json"
    )
    api_keys.append(created.json()["key"])

    _, rotated = services.api_key_rotate(api_key=ApiKey.objects.get(name="api-made"), actor=alice)
    api_keys.append(rotated)

    command_output = io.StringIO()
    call_command("create_api_key", org="org-b", user="erin", stdout=command_output)
    api_keys.append(command_output.getvalue().strip().splitlines()[-1])

    services.provider_credential_set(
        organization=org_a, provider="openai", key=PROVIDER_KEYS["service"], actor=alice
    )
    call_command(
        "set_provider_key",
        org="org-b",
        provider="openai",
        key=PROVIDER_KEYS["command"],
        stdout=io.StringIO(),
    )
    call_command(
        "set_provider_key", provider="openai", key=PROVIDER_KEYS["platform"], stdout=io.StringIO()
    )

    admin_client = Client()
    admin_client.force_login(alice)  # a session row in the database, too
    response = admin_client.post(
        reverse("admin:accounts_providercredential_add"),
        {
            "organization": org_a.pk,
            "provider": "anthropic",
            "name": "default",
            "key": PROVIDER_KEYS["admin"],
            "base_url": "",
            "options": "{}",
        },
    )
    assert response.status_code == 302
    response = admin_client.post(
        reverse("admin:accounts_apikey_add"),
        {
            "organization": org_a.pk,
            "user": alice.pk,
            "name": "admin-made",
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    api_keys.append(PLAINTEXT_KEY.search(response.content.decode()).group(0))

    assert len(set(api_keys)) == 7
    assert ProviderCredential.objects.count() == 4
    return {"api_keys": api_keys, "provider_keys": list(PROVIDER_KEYS.values())}


def _needles(secrets: dict) -> list[str]:
    """Each secret, and for API keys also the secret part alone (after the lookup prefix)."""
    needles = list(secrets["provider_keys"])
    for plaintext in secrets["api_keys"]:
        needles += [plaintext, plaintext[len("sk-syn-") + 8 :]]
    return needles


def test_a_database_dump_holds_no_plaintext_secret(secrets_everywhere):
    dump = io.StringIO()

    call_command("dumpdata", stdout=dump)

    text = dump.getvalue()
    assert '"model": "accounts.providercredential"' in text and '"key_hash"' in text
    for needle in _needles(secrets_everywhere):
        assert needle not in text
    # Unicode-escaped or otherwise re-encoded forms would slip past a plain search.
    decoded = json.dumps(json.loads(text), ensure_ascii=False)
    for needle in _needles(secrets_everywhere):
        assert needle not in decoded


def test_no_column_of_any_table_holds_a_plaintext_secret(secrets_everywhere):
    needles = _needles(secrets_everywhere)
    scanned_cells = 0
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    if value is None:
                        continue
                    if isinstance(value, memoryview | bytes):
                        value = bytes(value).decode("utf-8", "replace")
                    text = str(value)
                    scanned_cells += 1
                    for needle in needles:
                        assert needle not in text, f"a secret is stored in table {table}"
    assert scanned_cells > 100


# --- The log file --------------------------------------------------------------------------


@pytest.fixture
def log_file(tmp_path):
    """The project's logging configuration, plus the file handler LOG_FILE would add."""
    path = tmp_path / "proxy.log"
    config = copy.deepcopy(django_settings.LOGGING)
    config["handlers"]["file"] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": str(path),
        "formatter": "json",
        "filters": ["request_id", "redact_secrets"],
    }
    config["root"]["handlers"] = [*config["root"]["handlers"], "file"]
    config["root"]["level"] = "DEBUG"
    logging.config.dictConfig(config)
    try:
        yield path
    finally:
        logging.config.dictConfig(django_settings.LOGGING)


def test_the_log_file_holds_no_secret_after_requests(
    log_file, secrets_everywhere, alice_key, org_a
):
    api_key = secrets_everywhere["api_keys"][-1]
    provider_key = PROVIDER_KEYS["service"]
    bearer(api_key).get("/api/keys/")
    bearer(alice_key).post("/api/keys/", {"name": "logged"}, format="json")
    created = ApiKey.objects.get(name="logged")
    bearer(alice_key).post(f"/api/keys/{created.pk}/revoke/")
    bearer(alice_key[:-4] + "XXXX").get("/api/keys/")  # a forged key, refused
    bearer("sk-syn-" + "Q" * 48).get("/api/keys/")  # an unknown key, refused
    APIClient().get("/api/keys/", HTTP_X_API_KEY=api_key)
    proxy = Client(raise_request_exception=False)
    proxy.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    proxy.post(
        "/v1/chat/completions",
        {"model": "fake-echo", "messages": [{"role": "user", "content": f"my key is {alice_key}"}]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {alice_key}",
    )
    # Careless code that logs a secret outright is caught by the redaction filter.
    logger = logging.getLogger("accounts.tests")
    logger.warning("upstream refused %s for %s", provider_key, alice_key)
    try:
        raise RuntimeError(f"provider said no to {provider_key}")
    except RuntimeError:
        logger.exception("call failed")

    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log_file.read_text()

    lines = [json.loads(line) for line in text.splitlines()]
    assert any("created" in line["message"] for line in lines), "the requests logged nothing"
    assert any("rejected" in line["message"] for line in lines)
    assert any(line["message"].startswith("upstream refused") for line in lines)
    for needle in _needles(secrets_everywhere):
        assert needle not in text
