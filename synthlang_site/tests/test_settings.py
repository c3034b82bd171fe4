"""Start-up fails loudly, naming the variable, on any malformed environment value."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
GOOD_KEY = "x" * 43 + "="  # 32 bytes in url-safe base64


def load_settings(**env: str) -> subprocess.CompletedProcess:
    child_env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CACHE_TYPE", "CELERY_BROKER_URL"}
    }
    child_env.update({"DEBUG": "true", "LOG_FILE": ""})
    child_env.update(env)
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'], "
        "'name': str(settings.DATABASES['default']['NAME']), "
        "'host': settings.DATABASES['default'].get('HOST', ''), "
        "'port': settings.PORT, 'threshold': settings.CACHE_SIMILARITY_THRESHOLD}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**child_env, "DJANGO_SETTINGS_MODULE": "synthlang_site.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("CACHE_SIMILARITY_THRESHOLD", "2"),
        ("CACHE_SIMILARITY_THRESHOLD", "high"),
        ("CACHE_MAX_ITEMS", "0"),
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("DATABASE_URL", "postgresql://user@host:port/db"),
        ("DEBUG", "maybe"),
        ("USE_SYNTHLANG", "perhaps"),
        ("DEFAULT_ROLE", "owner"),
        ("LOG_LEVEL", "LOUD"),
        ("BASIC_RPM", "-1"),
        ("CACHE_TYPE", "memcached"),
        ("OPENAI_BASE_URL", "api.openai.com"),
        ("REDIS_URL", "localhost:6379"),
        ("ENCRYPTION_KEY", "not-a-fernet-key"),
    ],
)
def test_malformed_value_stops_start_up_naming_the_variable(variable, value):
    result = load_settings(**{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert variable in result.stderr.splitlines()[-1]


def test_missing_secret_key_stops_start_up_outside_debug():
    result = load_settings(
        DEBUG="false", SECRET_KEY="", ENCRYPTION_KEY=GOOD_KEY, ALLOWED_HOSTS="example.com"
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr.splitlines()[-1]


def test_missing_encryption_key_stops_start_up_outside_debug():
    result = load_settings(
        DEBUG="false", SECRET_KEY="s" * 50, ENCRYPTION_KEY="", ALLOWED_HOSTS="example.com"
    )
    assert result.returncode != 0
    assert "ENCRYPTION_KEY" in result.stderr.splitlines()[-1]


def test_production_settings_load_with_every_required_value():
    result = load_settings(
        DEBUG="false", SECRET_KEY="s" * 50, ENCRYPTION_KEY=GOOD_KEY, ALLOWED_HOSTS="example.com"
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://proxy:secret@db.internal:5433/synthlang",
        "postgres://proxy:secret@db.internal:5433/synthlang",
        "postgresql://proxy:secret@db.internal:5433/synthlang",
    ],
)
def test_database_url_accepts_every_postgres_form(url):
    result = load_settings(DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    # Django's PostgreSQL backend, through the pool's fail-fast wrapper (common/postgresql).
    assert '"db": "common.postgresql"' in result.stdout
    assert '"name": "synthlang"' in result.stdout
    assert '"host": "db.internal"' in result.stdout


@pytest.mark.parametrize(
    ("value", "expected_suffix"),
    [("./data/proxy.db", "data/proxy.db"), ("sqlite+aiosqlite:///./legacy.db", "legacy.db")],
)
def test_sqlite_path_accepts_a_path_or_the_sqlalchemy_form(value, expected_suffix):
    result = load_settings(SQLITE_PATH=value, USE_SQLITE="1")
    assert result.returncode == 0, result.stderr
    assert '"db": "django.db.backends.sqlite3"' in result.stdout
    assert expected_suffix in result.stdout
    assert "sqlite+aiosqlite" not in result.stdout


def test_valid_values_are_read():
    result = load_settings(PORT="9123", CACHE_SIMILARITY_THRESHOLD="0.9")
    assert result.returncode == 0, result.stderr
    assert '"port": 9123' in result.stdout
    assert '"threshold": 0.9' in result.stdout


def test_env_sample_lists_every_variable_the_settings_read():
    import re

    settings_source = "".join(
        path.read_text() for path in (BASE_DIR / "synthlang_site" / "settings").glob("*.py")
    )
    read = set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', settings_source))
    read |= {"SECRET_KEY", "ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL"}
    sample = (BASE_DIR / ".env.sample").read_text()
    listed = set(re.findall(r"^([A-Z0-9_]+)=", sample, flags=re.MULTILINE))
    assert read - listed == set()


def test_without_the_pool_the_stock_backend_opens_a_connection_per_request():
    result = load_settings(
        DATABASE_URL="postgresql://proxy:secret@db.internal:5433/synthlang", DB_POOL="false"
    )
    assert result.returncode == 0, result.stderr
    assert '"db": "django.db.backends.postgresql"' in result.stdout
