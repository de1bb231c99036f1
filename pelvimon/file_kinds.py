"""What kind of file a path names: a session file (MCAP) or, otherwise, CSV. Dependency-free, so that the
command line can check output paths without importing the session-file reader."""

from __future__ import annotations

import os
from pathlib import Path

SESSION_SUFFIX = ".mcap"
"""The name ending of session files."""

MCAP_MAGIC = b"\x89MCAP0\r\n"
"""The first bytes of a session file (MCAP), whatever its name."""


def is_session_file(path: str | os.PathLike[str]) -> bool:
    """A session file: named ``.mcap``, or an existing file starting with the MCAP magic (a session saved
    under another name)."""
    p = Path(path)
    if p.suffix.lower() == SESSION_SUFFIX:
        return True
    try:
        with p.open("rb") as f:
            return f.read(len(MCAP_MAGIC)) == MCAP_MAGIC
    except OSError:
        return False
