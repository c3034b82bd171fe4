"""The cast every test shares.

org_a has alice (admin) and bob (basic member); org_b has charlie (admin). Each has
an API key (the plaintext fixture ``<name>_key``) and a management API client.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts import services
from common.local_state import local_state_forget


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_on_deadlock():
    """Let a transactional test's flush retry when it deadlocks with a server process.

    End-to-end tests run real proxy processes on the test database, and those write in
    the background after answering (usage, cache entries). PostgreSQL's TRUNCATE can
    deadlock with such a write; the write is aborted or finishes, and the flush succeeds
    when tried again.
    """
    import time as _time

    from django.core.management.base import CommandError
    from django.db import OperationalError
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown_with_retries(self):
        for attempt in range(10):
            try:
                original(self)
                break
            except (CommandError, OperationalError) as error:
                cause = error if isinstance(error, OperationalError) else error.__cause__
                if attempt == 9 or "deadlock" not in str(cause):
                    raise
                _time.sleep(0.3)
        _seeded_rows_restore()

    TransactionTestCase._fixture_teardown = teardown_with_retries
    yield
    TransactionTestCase._fixture_teardown = original


# Data migrations that seed rows every deployment has (list prices). A transactional
# test's flush empties every table, so a later test would otherwise depend on the order
# tests ran in; the seeds are idempotent and put the rows back.
_SEEDING_MIGRATIONS = (
    "billing.migrations.0002_seed_list_prices",
    "billing.migrations.0006_prompt_cache_prices",
    "billing.migrations.0009_per_unit_and_batch_prices",
)


def _seeded_rows_restore() -> None:
    import importlib

    from django.apps import apps

    for name in _SEEDING_MIGRATIONS:
        importlib.import_module(name).seed(apps, None)


def _forget_process_state() -> None:
    # Every module registers its in-process state (common.local_state) where it keeps it.
    local_state_forget()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The cast's users get real passwords; the default hasher costs about a second per
    # user on a small machine, for nothing the tests check. Autouse, so it applies first.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _usage_spool_in_tmp(settings, tmp_path):
    # Usage the test database refuses is spooled to the test's own directory.
    settings.USAGE_SPOOL_DIR = str(tmp_path / "usage-spool")


@pytest.fixture(autouse=True)
def _fresh_caches():
    # Tests share one cache server in CI and one process's in-memory caches; none may
    # see another test's keys, routes or counters.
    _forget_process_state()
    cache.clear()
    yield
    _forget_process_state()


@pytest.fixture
def celery_eager(settings):
    """Run Celery tasks in the calling process, as the embedded default does, even when
    the environment names a broker (CI does)."""
    from synthlang_site.celery import app

    # Read before the setting changes: Celery loads its configuration from the settings on
    # first access, and would otherwise record (and restore) eager mode as the previous value.
    previous = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def org_a(db):
    return services.organization_create(name="Org A", slug="org-a")


@pytest.fixture
def org_b(db):
    return services.organization_create(name="Org B", slug="org-b")


def _member(organization, username: str, role: str):
    user, _ = services.user_get_or_create(username=username, email=f"{username}@example.com")
    user.set_password(f"{username}-password-1")
    user.save()
    services.membership_set(organization=organization, user=user, role=role, actor=None)
    return user


@pytest.fixture
def alice(org_a):
    return _member(org_a, "alice", "admin")


@pytest.fixture
def bob(org_a):
    return _member(org_a, "bob", "basic")


@pytest.fixture
def charlie(org_b):
    return _member(org_b, "charlie", "admin")


def _key(organization, user) -> str:
    _, plaintext = services.api_key_create(
        organization=organization, user=user, name=f"{user.username}'s key", actor=user
    )
    return plaintext


@pytest.fixture
def alice_key(org_a, alice) -> str:
    return _key(org_a, alice)


@pytest.fixture
def bob_key(org_a, bob) -> str:
    return _key(org_a, bob)


@pytest.fixture
def charlie_key(org_b, charlie) -> str:
    return _key(org_b, charlie)


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def alice_client(alice_key) -> APIClient:
    return _client(alice_key)


@pytest.fixture
def bob_client(bob_key) -> APIClient:
    return _client(bob_key)


@pytest.fixture
def charlie_client(charlie_key) -> APIClient:
    return _client(charlie_key)
