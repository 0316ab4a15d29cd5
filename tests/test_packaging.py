"""What a fresh machine gets from `make run` / `make test` and from `pip install`: the tested
versions, the fonts every documented command needs, and a package that installs quietly."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_the_constraints_pin_every_dependency_within_its_bounds() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    pins = _pins()
    for requirement in requirements:
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in constraints.txt"
        assert requirement.specifier.contains(pinned), (requirement, pinned)


def test_bounds_leave_out_releases_with_published_advisories() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    bounds = {Requirement(r).name: Requirement(r).specifier for r in project["dependencies"]}
    for name, vulnerable in (
        ("pydicom", "3.0.1"),  # CVE-2026-32711
        ("aiohttp", "3.14.2"),
        ("cryptography", "49.0.0"),
    ):
        assert not bounds[name].contains(vulnerable), (name, bounds[name])


def test_make_installs_from_the_constraints_and_run_gets_the_fonts() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installs = [line for line in re.findall(r"pip install[^\n]*", makefile) if "-e " in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    prerequisites = dict(re.findall(r"^(run|test):([^\n]*)$", makefile, re.M))
    assert "fonts" in prerequisites["run"].split() and "fonts" in prerequisites["test"].split()
    dry_run = subprocess.run(
        ["make", "-n", "-B", "fonts"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "fonts-noto-cjk" in dry_run.stdout and "fonts-noto-core" in dry_run.stdout


def test_the_package_builds_without_warnings_and_ships_the_upload_page(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves build/ behind, and would reuse it next time.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("bot", "handlers", "conversations", "records", "storage"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    # What pip does to build it, by hand: recent pip versions hide the backend's warnings.
    backend = tmp_path / "backend"
    requires = _pyproject()["build-system"]["requires"]  # type: ignore[index]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(backend), *requires],
        check=True,
        timeout=300,
    )
    wheels = tmp_path / "wheels"
    build = "import sys, setuptools.build_meta as b; b.build_wheel(sys.argv[1])"
    built = subprocess.run(
        [sys.executable, "-c", build, str(wheels)],
        cwd=source,
        env={"PYTHONPATH": str(backend), "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "default"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    output = built.stdout + built.stderr
    # setuptools' warnings (an importable folder missing from `packages`, and the like).
    assert "Warning" not in output, output[-5000:]
    (wheel,) = wheels.glob("huizhen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for page in ("upload.html", "upload.js", "upload.css"):
        assert f"bot/static/{page}" in names
