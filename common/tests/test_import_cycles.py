"""No circle among the module-level imports of the project's apps.

A circle makes the import order matter (whichever module is imported first sees the other
half-initialised) and says that two modules are one in two files. Read with the standard
library's ``ast``: every import that runs when a module is imported (at module level, in
a class body, under ``try`` or ``if``; not inside a function, not under
``if TYPE_CHECKING:``), ``from package import name`` counting the submodule ``name`` when
there is one, and importing ``a.b.c`` counting the packages ``a.b`` runs first.
"""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

PACKAGES = ("proxy", "common", "billing", "accounts", "guardrails")


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if "tests" in parts or "migrations" in parts:
                continue  # leaves: nothing imports them
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(body: list[ast.stmt]):
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _runtime_imports(node.body)
            yield from _runtime_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _runtime_imports(block)
            for handler in node.handlers:
                yield from _runtime_imports(handler.body)
        elif isinstance(node, ast.ClassDef | ast.With):
            yield from _runtime_imports(node.body)


def _targets(module: str, is_package: bool, node, modules: dict[str, Path]) -> set[str]:
    own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    targets = set()

    def add(name: str, *, explicit: bool) -> None:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate not in modules or candidate == module:
                continue
            # The importing module's own packages began initialising before it ran: only
            # a name taken from one of them (``from package import function``) depends on
            # how far that package's ``__init__`` got.
            if candidate in own_packages and not (explicit and candidate == name):
                continue
            targets.add(candidate)

    if isinstance(node, ast.Import):
        for alias in node.names:
            add(alias.name, explicit=False)
        return targets
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    add(base, explicit=False)
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        if submodule in modules:
            add(submodule, explicit=False)
        else:
            add(base, explicit=True)  # a name defined in ``base`` itself
    return targets


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = _modules(root)
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[module] = set()
        for node in _runtime_imports(tree.body):
            graph[module] |= _targets(module, is_package, node, modules)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep chain of imports cannot hit the recursion limit.
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_checker_finds_a_circle_and_a_circle_through_a_package(tmp_path):
    for relative, text in {
        "proxy/__init__.py": "",
        "proxy/a.py": "from proxy import b\n",
        "proxy/b.py": "import proxy.c\n",
        "proxy/c.py": "from proxy.a import thing\n\ndef later():\n    from proxy import d\n",
        "proxy/d.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from proxy import a\n"
        ),
        "proxy/pkg/__init__.py": "from proxy.pkg.inner import x\n",
        "proxy/pkg/inner.py": "from proxy import e\n",
        "proxy/e.py": "from proxy.pkg import y\n",
        "proxy/own/__init__.py": "from proxy.own import part\n",
        "proxy/own/part.py": "from proxy.own import helper\n",
        "proxy/fine/__init__.py": "from proxy.fine import one\n",
        "proxy/fine/one.py": "from proxy.fine import two\n",
        "proxy/fine/two.py": "",
    }.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    found = cycles(import_graph(tmp_path))

    assert ["proxy.a", "proxy.b", "proxy.c"] in found
    assert ["proxy.e", "proxy.pkg", "proxy.pkg.inner"] in found
    assert ["proxy.own", "proxy.own.part"] in found  # a name from a half-run __init__
    assert not any("proxy.d" in component for component in found)
    assert not any("proxy.fine.one" in component for component in found)


def test_no_module_level_import_circle_remains():
    assert cycles(import_graph(Path(settings.BASE_DIR))) == []
