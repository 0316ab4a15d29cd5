"""The test suite's own shape: shared helpers live in tests/support/ (or the fakes beside it),
so no test file imports another (which would also collect its tests twice over)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "tests":  # `from tests import test_x`
                found |= {f"tests.{alias.name}" for alias in node.names}
    return found


def test_no_test_file_imports_another_or_the_conftest() -> None:
    offenders = {
        f"{path.relative_to(TESTS.parent)} imports {module}"
        for path in TESTS.rglob("*.py")
        for module in imported_modules(path)
        if module.startswith("tests.test_") or module == "tests.conftest"
    }
    assert not offenders, sorted(offenders)


def test_the_check_sees_an_import_of_a_test_file(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text("from tests import test_telegram\nfrom tests.test_wechat import run\n")
    assert imported_modules(sample) >= {"tests.test_telegram", "tests.test_wechat"}
