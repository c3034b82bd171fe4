"""`pip install -r requirements.txt` alone gives a working semantic cache.

Heroku's buildpack, `sam build`, Cloud Functions and Render run nothing else, so this test
builds a fresh virtualenv from requirements.txt only (no dev requirements, no second step),
checks `pip check`, and serves a semantic hit from a server running in that venv. It takes a
minute or two (pip's cache makes the downloads local); it runs with the rest of the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path

import pytest
from django.conf import settings

from common.testing import free_port, wait_for_http

ROOT = Path(settings.BASE_DIR)


def _run(args: list[str], *, env: dict, timeout: float) -> str:
    result = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
    return result.stdout


def _chat(base_url: str, key: str, question: str) -> str:
    request = urllib.request.Request(
        f"{base_url}/v1/chat/completions",
        data=json.dumps(
            {"model": "gpt-4o", "messages": [{"role": "user", "content": question}]}
        ).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers["x-synthlang-cache"]


@pytest.mark.live
def test_requirements_txt_alone_installs_a_working_semantic_cache(tmp_path):
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = str(target / "bin" / "python")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "VIRTUAL_ENV"}
    }
    env.update(
        {
            "DEBUG": "true",
            "LOG_FILE": "",
            "USE_SQLITE": "1",
            "SQLITE_PATH": str(tmp_path / "fresh.sqlite3"),
            "CACHE_TYPE": "memory",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    _run(
        [python, "-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements.txt")],
        env=env,
        timeout=1800,
    )
    _run([python, "-m", "pip", "check"], env=env, timeout=120)
    installed = _run([python, "-m", "pip", "list", "--format=freeze"], env=env, timeout=120)
    assert "torch" not in installed.lower()
    # The alternative embedder (CACHE_EMBEDDER=minilm) loads from the same install: its
    # files pass their publisher's hashes and onnxruntime runs the graph.
    minilm = _run(
        [
            python,
            "-c",
            "from proxy.semantic_cache.minilm import MiniLMEmbedder; "
            "print(MiniLMEmbedder().embed(['How do I renew my passport?']).shape)",
        ],
        env=env,
        timeout=300,
    )
    assert minilm.strip().splitlines()[-1] == "(1, 384)"

    _run([python, "manage.py", "migrate", "--noinput"], env=env, timeout=600)
    output = _run(
        [python, "manage.py", "create_api_key", "--org", "fresh", "--user", "fresh"],
        env=env,
        timeout=120,
    )
    key = output.strip().splitlines()[-1]

    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [python, "-m", "synthlang_site"],
        cwd=ROOT,
        env={**env, "HOST": "127.0.0.1", "PORT": str(port), "AUTO_MIGRATE": "0"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base_url}/health", process=server, timeout=120)
        first = _chat(base_url, key, "How do I renew my passport online?")
        time.sleep(0.5)  # the answer is stored after the response
        # Not an exact repeat (a typo and other case): only the semantic tier can hit.
        second = _chat(base_url, key, "how do i renew my pasport online")
        with urllib.request.urlopen(f"{base_url}/health", timeout=30) as response:
            health = json.loads(response.read())
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert (first, second) == ("miss", "hit"), (tmp_path / "server.log").read_text()[-3000:]
    assert health["components"]["semantic_cache"]["status"] == "ok"
    assert sys.executable != python
