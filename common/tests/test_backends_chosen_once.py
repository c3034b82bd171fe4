"""Whether Redis holds shared state is asked in one place per backend: its chooser.

Shared state (limits, budgets, usage buffers, the live feed, the response cache) lives
behind backend objects chosen from the settings; code that asks ``redis_enabled()`` itself
is a branch the backends were made to remove (issue 18). Read with ``ast``, so a call
under any alias of the module (``shared_redis.redis_enabled()``) counts, and so does one
imported by name.
"""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

PACKAGES = ("proxy", "common", "billing", "accounts", "guardrails", "synthlang_site")
# (file, function) allowed to ask: the predicate's own home and the backends' choosers.
CHOOSERS = {
    ("common/redis.py", "redis_enabled"),
    ("proxy/response_cache/backends.py", "cache_tiers"),
}


def _calls(tree: ast.AST):
    """(enclosing function, line) of every ``redis_enabled(...)`` call in the tree."""

    def visit(node: ast.AST, function: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from visit(child, child.name)
                continue
            if isinstance(child, ast.Call):
                called = child.func
                name = called.attr if isinstance(called, ast.Attribute) else None
                if isinstance(called, ast.Name):
                    name = called.id
                if name == "redis_enabled":
                    yield function, child.lineno
            yield from visit(child, function)

    yield from visit(tree, "")


def _branches(root: Path) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if "tests" in relative.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for function, line in _calls(tree):
                if (relative.as_posix(), function) not in CHOOSERS:
                    found.append(f"{relative}:{line} in {function or 'module'}")
    return found


def test_only_the_backends_choosers_ask_whether_redis_is_enabled():
    assert _branches(Path(settings.BASE_DIR)) == []


def test_the_check_finds_a_branch_on_redis_enabled(tmp_path):
    # The check itself can fail: a module that branches on the predicate is reported.
    package = tmp_path / "proxy"
    package.mkdir()
    (package / "sneaky.py").write_text(
        "from common import redis as shared_redis\n\n\n"
        "def lookup():\n"
        "    if shared_redis.redis_enabled():\n"
        "        return 1\n"
        "    return 0\n",
        encoding="utf-8",
    )
    assert _branches(tmp_path) == ["proxy/sneaky.py:5 in lookup"]
