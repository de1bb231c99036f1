"""Test-wide setup. Qt must run offscreen on machines without a display: set before any Qt import."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared folder (protocols, datasets). Tests that need it fail if it is missing."""
    if not SHARED.is_dir():
        pytest.fail(f"../shared not found next to the repository (looked in {SHARED})")
    return SHARED
