"""Strict tools in CI: the linter over the whole repository, and mypy over the import package.

mypy cannot follow setuptools' folder-to-package mapping (``dsp/`` -> ``pelvimon.dsp``), so the check
builds the package as it is imported, from symbolic links in a temporary folder, and checks that.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("firmware_protocols", "sensors", "dsp", "gui")


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", name]


def test_ruff_is_clean() -> None:
    r = subprocess.run([*_tool("ruff"), "check", "--no-cache", str(REPO)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _package_tree(root: Path) -> Path:
    pkg = root / "pelvimon"
    pkg.mkdir()
    for f in (REPO / "pelvimon").iterdir():
        if f.suffix == ".py" or f.name == "commands":
            (pkg / f.name).symlink_to(f)
    for layer in LAYERS:
        (pkg / layer).symlink_to(REPO / layer)
    return root


def test_mypy_is_clean(tmp_path: Path) -> None:
    root = _package_tree(tmp_path)
    r = subprocess.run(
        [*_tool("mypy"), "--ignore-missing-imports", "--python-version", "3.11", "--no-incremental",
         "--cache-dir", str(tmp_path / ".mypy_cache"), "-p", "pelvimon"],
        capture_output=True, text=True, cwd=root,
    )
    shutil.rmtree(tmp_path / ".mypy_cache", ignore_errors=True)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
