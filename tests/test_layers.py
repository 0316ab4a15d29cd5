"""The layers import one way: records/ and storage/ at the bottom, then conversations/,
handlers/, bot/; platform libraries only in bot/channels/. Every import of every module is
walked (top-level and inside functions), so a lazy import cannot slip past."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("records", "storage", "conversations", "handlers", "bot")
ALLOWED: dict[str, frozenset[str]] = {
    "records": frozenset({"records"}),
    "storage": frozenset({"storage"}),
    "conversations": frozenset({"conversations", "records"}),
    "handlers": frozenset({"handlers", "conversations", "records", "storage"}),
    "bot": frozenset(LAYERS),
}
PLATFORMS = frozenset({"telegram", "aiogram", "wechatpy"})
PLATFORM_HOME = ROOT / "bot" / "channels"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def violations() -> list[str]:
    wrong: list[str] = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            where = path.relative_to(ROOT)
            for line, module in _imports(path):
                top = module.split(".")[0]
                if module.startswith("."):
                    wrong.append(f"{where}:{line}: relative import {module!r}; name the package")
                elif top in LAYERS and top not in ALLOWED[layer]:
                    wrong.append(f"{where}:{line}: {layer}/ imports {module} (runs up)")
                elif top in PLATFORMS and PLATFORM_HOME not in path.parents:
                    wrong.append(f"{where}:{line}: {module} outside bot/channels/")
    return wrong


def test_every_import_runs_down_the_layers() -> None:
    assert violations() == []


def test_the_walk_sees_an_upward_import(tmp_path: Path) -> None:
    # The check itself can fail: an upward import, even inside a function, is named.
    module = tmp_path / "bad.py"
    module.write_text("def later() -> None:\n    from handlers.updates import pipeline\n")
    assert _imports(module) == [(2, "handlers.updates")]


def test_the_architecture_picture_shows_exactly_the_allowed_imports() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    picture = text.split("```mermaid", 1)[1].split("```", 1)[0]
    arrows = {
        (left.strip(), right.strip())
        for line in picture.splitlines()
        if "-->" in line
        for left, right in [line.split("-->")]
    }
    allowed = {
        (layer, other) for layer, others in ALLOWED.items() for other in others if other != layer
    }
    assert arrows == allowed
