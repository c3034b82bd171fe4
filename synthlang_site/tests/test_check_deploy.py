"""Production settings pass ``manage.py check --deploy`` with no warnings at all."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

# Variables of the test run (pyproject's pytest env, a developer's shell) that would
# turn production settings into something else; the subprocess starts without them.
_CLEARED = (
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_PRELOAD",
    "SECRET_KEY",
    "ENCRYPTION_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DJANGO_SETTINGS_MODULE",
)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in _CLEARED}
    env.update(
        {
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "proxy.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://proxy.example.com",
            "LOG_FILE": "",
            "BACKUP_DIR": str(tmp_path / "backups"),
        }
    )
    if "DATABASE_URL" not in env:
        env["SQLITE_PATH"] = str(tmp_path / "deploy-check.db")

    completed = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in output, output
