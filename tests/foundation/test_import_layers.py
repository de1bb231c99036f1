"""The design's one-way imports: firmware_protocols -> (numpy, stdlib); dsp never imports bleak, Qt or
file I/O; sensors never imports Qt; only gui imports Qt."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

QT = {"PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6"}
BLE = {"bleak", "bumble"}
FILE_IO = {"io", "csv", "json", "h5py", "pandas", "mcap", "pickle", "shelve", "sqlite3", "gzip", "tomllib", "tempfile",
           "shutil", "zipfile", "tarfile", "glob", "fileinput", "bz2", "lzma", "mmap"}
STDLIB = set(sys.stdlib_module_names)

# layer folder -> (allowed third-party top-level modules, allowed pelvimon subpackages, forbidden stdlib)
RULES: dict[str, tuple[set[str], set[str], set[str]]] = {
    "firmware_protocols": ({"numpy"}, {"firmware_protocols"}, set()),
    "dsp": ({"numpy", "scipy", "vqf"}, {"dsp", "firmware_protocols"}, FILE_IO | {"os", "pathlib", "asyncio"}),
    "sensors": (
        # zstandard, lz4: the MCAP chunk codecs (the session reader decompresses chunks itself)
        {"numpy", "scipy", "bleak", "bumble", "mcap", "zstandard", "lz4", "vqf", "pandas"},
        {"sensors", "firmware_protocols", "dsp"},
        set(),
    ),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import stays inside its own layer
                out.append((node.lineno, "."))
            elif node.module:
                out.append((node.lineno, node.module))
    return out


def _layer_files(layer: str) -> list[Path]:
    return sorted((REPO / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_only_what_the_design_allows(layer: str) -> None:
    third_party, own, banned_std = RULES[layer]
    bad = []
    files = _layer_files(layer)
    assert files, f"no Python files in {layer}/"
    for path in files:
        for line, name in _imports(path):
            if name == ".":
                continue
            top = name.split(".")[0]
            if top == "pelvimon":
                parts = name.split(".")
                sub = parts[1] if len(parts) > 1 else ""
                if sub and sub not in own:  # the bare package only carries __version__
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {name}")
            elif top == "__future__":
                continue
            elif top in STDLIB:
                if top in banned_std:
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {name} (I/O or async in {layer})")
            elif top not in third_party:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not bad, "imports against the design's layering:\n" + "\n".join(bad)


def _calls_open(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"]  # fmt: skip


def test_dsp_opens_no_file() -> None:
    """No file I/O in dsp/ by the builtin ``open`` either (the imports are checked above)."""
    bad = [f"{p.relative_to(REPO)}:{line}" for p in _layer_files("dsp") for line in _calls_open(p)]
    assert not bad, "open() in dsp/:\n" + "\n".join(bad)


def test_only_gui_imports_qt() -> None:
    bad = []
    for layer in ("firmware_protocols", "dsp", "sensors", "pelvimon"):
        for path in _layer_files(layer):
            for line, name in _imports(path):
                if name.split(".")[0] in QT:
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not bad, "Qt imported outside gui/:\n" + "\n".join(bad)


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    p = tmp_path / "m.py"
    p.write_text("import bleak\nfrom PySide6 import QtCore\nfrom . import x\n")
    names = [n for _, n in _imports(p)]
    assert names == ["bleak", "PySide6", "."]
    p.write_text("def f():\n    with open('x') as fh:\n        return fh.read()\n")
    assert _calls_open(p) == [2]
