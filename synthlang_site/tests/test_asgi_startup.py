"""What the server process does once, when Daphne loads the ASGI application."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings


def test_startup_objects_are_frozen_out_of_the_garbage_collectors_walks():
    probe = (
        "import gc\n"
        "before = gc.get_threshold()[0]\n"
        "import synthlang_site.asgi\n"
        "print(before, gc.get_threshold()[0], gc.get_freeze_count())\n"
    )
    # Without the cache's warm-up thread: the probe exits at once, and an interpreter that
    # exits while that thread is inside the embedding runtime's native code can abort
    # (std::terminate); the objects frozen are the same, the freeze runs before it starts.
    env = {**os.environ, "DEBUG": "true", "LOG_FILE": "", "ENABLE_CACHE": "0"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    before, after, frozen = (int(n) for n in result.stdout.split()[-3:])
    assert before == 700  # CPython's default
    assert after == 20_000
    assert frozen > 50_000


def test_the_mcp_sdk_is_not_imported_until_mcp_is_asked_for():
    # A chat-only process does not carry the SDK (some 500 modules, 50 MB); the route
    # imports it on the first /mcp request (tools/mcp_route.py).
    probe = (
        "import sys\n"
        "import synthlang_site.asgi\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in "
        "('mcp', 'mcp_types', 'tools')))\n"
    )
    env = {**os.environ, "DEBUG": "true", "LOG_FILE": "", "ENABLE_CACHE": "0"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = result.stdout.strip().splitlines()[-1]
    assert "'tools.mcp_route'" in loaded  # the probe saw the route's module...
    assert "'mcp" not in loaded  # ...and neither the SDK nor its types package
    assert "tools.mcp_server" not in loaded
