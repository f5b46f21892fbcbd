"""The layering of the product, checked by reading its imports (every import, TYPE_CHECKING and local ones too).

bot/ composes · cogs/ are glue · services/ hold the rules · storage/ the rows. The domain vocabulary
(`services.models`) is a leaf that storage and services share; nothing imports upwards, and no two
modules import each other, however indirectly.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "cogs", "services", "storage")
LEAF = "services.models"
PLATFORM_CLIENTS = ("discord", "telegram", "aiohttp")


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of the product by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, name: str, known: dict[str, Path]) -> Iterator[str]:
    """What the file imports, anywhere in it: product modules by name, anything else by top-level package.

    `from pkg import sub` depends on the submodule `pkg.sub`; `from module import thing` on `module`.
    """

    def resolve(dotted: str) -> str:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in known:
                return ".".join(parts[:end])
        return parts[0]

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                yield f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else resolve(module)


def graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(product module → product modules it imports, product module → other top-level packages)."""
    known = modules(root, packages)
    inside: dict[str, set[str]] = {}
    outside: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set(imports(path, name, known)) - {name}
        inside[name] = {t for t in targets if t in known}
        outside[name] = {t for t in targets if t not in known and t not in packages}
    return inside, outside


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def upward(edges: dict[str, set[str]], outside: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the layering, as "importer → imported"."""
    wrong: list[str] = []
    for name, targets in sorted(edges.items()):
        layer = name.partition(".")[0]
        for target in sorted(targets):
            if name == LEAF:
                wrong.append(f"{name} → {target} (the vocabulary imports nothing of the project)")
            elif layer == "storage" and not (target.startswith("storage") or target == LEAF):
                wrong.append(f"{name} → {target} (storage knows only storage and {LEAF})")
            elif layer == "services" and target.partition(".")[0] in ("bot", "cogs"):
                wrong.append(f"{name} → {target} (services never import bot or cogs)")
            elif layer == "cogs" and target.partition(".")[0] == "storage":
                wrong.append(f"{name} → {target} (cogs reach storage through the services)")
        pure = layer in ("services", "storage") and not name.startswith("services.delivery")
        for client in sorted(outside.get(name, set()) & set(PLATFORM_CLIENTS)):
            if pure:
                wrong.append(f"{name} → {client} (only bot/, cogs/ and services/delivery/ talk to platforms)")
    return wrong


# -- the product ---------------------------------------------------------------------------------


def test_no_module_imports_upwards() -> None:
    edges, outside = graph(ROOT)
    assert upward(edges, outside) == []


def test_no_modules_import_each_other() -> None:
    edges, _ = graph(ROOT)
    assert cycles(edges) == []


def test_the_checks_see_the_product() -> None:
    edges, outside = graph(ROOT)
    assert "services.fanout" in edges["services.dispatcher"]  # a plain import
    assert "bot.client" in edges["cogs.promote"]  # a TYPE_CHECKING import counts too
    assert "bot.api.models" in edges["bot.api.handlers"]  # `from bot.api import models as m`
    assert "bot.api" not in edges["bot.api.handlers"]
    assert "discord" in outside["services.delivery.discord_dm"]


# -- the checks themselves, on a made-up tree ----------------------------------------------------


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


BAD_TREE = {
    "bot/__init__.py": "",
    "cogs/__init__.py": "",
    "cogs/a.py": "import storage.rows\n",
    "services/__init__.py": "",
    "services/models.py": "from services import rules\n",
    "services/rules.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cogs import a\n",
    "services/clients.py": "def f():\n    import aiohttp\n",
    "services/delivery/__init__.py": "",
    "services/delivery/chat.py": "import telegram\n",
    "storage/__init__.py": "",
    "storage/rows.py": "from services.models import X\nfrom services.rules import y\n",
    "storage/a.py": "from . import b\n",
    "storage/b.py": "from .a import thing\n",
}


@pytest.mark.parametrize(
    "expected",
    [
        "cogs.a → storage.rows (cogs reach storage through the services)",
        "services.models → services.rules (the vocabulary imports nothing of the project)",
        "services.rules → cogs.a (services never import bot or cogs)",
        "services.clients → aiohttp (only bot/, cogs/ and services/delivery/ talk to platforms)",
        "storage.rows → services.rules (storage knows only storage and services.models)",
    ],
)
def test_an_upward_import_is_caught(tmp_path: Path, expected: str) -> None:
    write(tmp_path, BAD_TREE)
    edges, outside = graph(tmp_path)
    assert expected in upward(edges, outside)


def test_allowed_imports_are_not_reported(tmp_path: Path) -> None:
    write(tmp_path, BAD_TREE)
    edges, outside = graph(tmp_path)
    reported = "\n".join(upward(edges, outside))
    assert "services.delivery.chat" not in reported
    assert "storage.rows → services.models " not in reported


def test_a_cycle_is_caught_even_through_relative_imports(tmp_path: Path) -> None:
    write(tmp_path, BAD_TREE)
    edges, _ = graph(tmp_path)
    assert ["storage.a", "storage.b"] in cycles(edges)
    assert ["services.models", "services.rules"] not in cycles(edges)  # one direction only
