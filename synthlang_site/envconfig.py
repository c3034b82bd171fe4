"""Reading the environment for the settings (synthlang_site/settings/).

Every helper here fails loudly: a malformed value stops start-up with an
``ImproperlyConfigured`` error whose message names the variable, so a typo in a
deployment's environment never turns into a silently different configuration.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def _fail(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}.")


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise _fail(name, value, "one of 1/0, true/false, yes/no, on/off")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _fail(name, value, "a whole number") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _fail(name, value, f"a whole number between {minimum} and {maximum}")
    return number


def env_float(name: str, default: float, *, minimum: float, maximum: float) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise _fail(name, value, "a number") from None
    if not minimum <= number <= maximum:
        raise _fail(name, value, f"a number between {minimum} and {maximum}")
    return number


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    value = _raw(name)
    if value is None or value == "":
        return default
    normalised = value.upper() if upper else value.lower()
    if normalised not in choices:
        raise _fail(name, value, "one of " + ", ".join(choices))
    return normalised


def env_url(name: str, default: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = _raw(name)
    if value is None or value == "":
        return default
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise _fail(name, value, "a URL starting with " + " or ".join(f"{s}://" for s in schemes))
    return value.rstrip("/")


# Older deployments of the proxy were configured with SQLAlchemy-style URLs; Django's
# parser only knows the plain schemes, so the driver suffix is dropped before parsing.
_POSTGRES_SCHEMES = ("postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2")


def database_from_url(name: str, value: str) -> dict:
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise _fail(name, value, "a URL such as postgresql://user:password@host:5432/dbname")
    if scheme in _POSTGRES_SCHEMES:
        scheme = "postgresql"
    if scheme not in ("postgres", "postgresql", "pgsql"):
        raise _fail(name, value, "a postgresql:// or postgres:// URL")
    try:
        config = _env.db_url_config(f"{scheme}://{rest}")
    except Exception as exc:  # django-environ raises several exception types here
        raise _fail(name, value, f"a parseable database URL ({exc})") from None
    if not config.get("NAME"):
        raise _fail(name, value, "a URL that names the database after the last '/'")
    try:
        # A bad port only shows up when the parsed URL is asked for it.
        int(config.get("PORT") or 5432)
    except ValueError:
        raise _fail(name, value, "a URL with a numeric port") from None
    config["ENGINE"] = "django.db.backends.postgresql"
    return config


def sqlite_path(name: str, value: str, base_dir: Path) -> Path:
    """Accept a plain path or the ``sqlite+aiosqlite:///./file.db`` form."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    if not value or "://" in value:
        raise _fail(name, value, "a file path or sqlite:///path/to/file.db")
    path = Path(value)
    return path if path.is_absolute() else base_dir / path


def redis_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    schemes = ("redis", "rediss", "unix", "redis+sentinel", "sentinel")
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise _fail(
            name,
            value,
            "a redis://host:port/db URL, or redis+sentinel://host:port[,host:port]/master[/db]",
        )
    return value


def redis_tls_url(url: str, *, cert_reqs: str, ca_certs: str = "") -> str:
    """A ``rediss://`` URL with the TLS checks to make, for every Redis client to read.

    redis-py (the Django cache, the proxy's own clients), Celery's broker and result
    backend and channels-redis all take ``ssl_cert_reqs`` and ``ssl_ca_certs`` from the
    URL's query; the proxy's pipelined client reads the same parameters. Values already in
    the URL win. Other schemes are returned unchanged.
    """
    if not url.startswith("rediss://"):
        return url
    present = {part.split("=", 1)[0] for part in urlsplit(url).query.split("&") if part}
    extra = []
    if "ssl_cert_reqs" not in present:
        extra.append(f"ssl_cert_reqs={cert_reqs}")
    if ca_certs and "ssl_ca_certs" not in present:
        extra.append(f"ssl_ca_certs={quote(ca_certs, safe='/')}")
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


def fernet_keys(name: str, value: str) -> list[str]:
    """Validate a comma-separated list of Fernet keys; the first one encrypts."""
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        raise _fail(name, value, "at least one Fernet key")
    for key in keys:
        try:
            raw = base64.urlsafe_b64decode(key.encode())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ImproperlyConfigured(
                f"{name} holds a value that is not a Fernet key (32 url-safe base64-encoded "
                'bytes). Generate one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            )
    return keys


def local_dev_secrets(path: Path) -> dict[str, str]:
    """Development secrets, generated once into a git-ignored file and then reused.

    Reusing them matters: provider keys encrypted under a fresh ENCRYPTION_KEY at
    every restart could never be read again.
    """
    values = _read_env_file(path)
    if values.get("SECRET_KEY") and values.get("ENCRYPTION_KEY"):
        return values
    generated = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    body = "# Generated for local development only. Never use these in production.\n"
    body += "".join(f"{key}={value}\n" for key, value in generated.items())
    # Several processes may start at once (test workers, web and worker): the file is
    # created exclusively, and whoever loses the race reads the winner's secrets.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):
            values = _read_env_file(path)
            if values.get("SECRET_KEY") and values.get("ENCRYPTION_KEY"):
                return values
            time.sleep(0.02)
        raise ImproperlyConfigured(
            f"{path} exists but holds no SECRET_KEY/ENCRYPTION_KEY"
        ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(body)
    return generated


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.lstrip().startswith("#"):
                values[key.strip()] = value.strip()
    return values
