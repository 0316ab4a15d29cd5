"""The bot starts without the heavy libraries it needs only for files: pydicom, fpdf, numpy,
Pillow, pypdf and dicognito load at the first file or PDF, not at start (issue 21: the console
shows its first prompt in about half a second)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pydicom", "fpdf", "numpy", "PIL", "pypdf", "dicognito", "pillow_heif", "fontTools")
# Loaded only for a web app, Orthanc or a schema to migrate: the console on a current SQLite
# file needs none of them.
CONSOLE_UNNEEDED = (*HEAVY, "aiohttp", "requests", "alembic", "telegram", "aiogram", "wechatpy")


def _loaded_after(module: str, watched: tuple[str, ...]) -> list[str]:
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps([m for m in {list(watched)!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("module", ["bot.runner", "bot.app", "bot.cli"])
def test_starting_imports_no_file_library(module: str) -> None:
    assert _loaded_after(module, HEAVY) == []


def test_the_console_command_line_imports_no_web_nor_migration_library() -> None:
    assert _loaded_after("bot.cli", CONSOLE_UNNEEDED) == []
