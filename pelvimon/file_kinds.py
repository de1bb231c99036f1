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
    """A session file: named ``.mcap``, or an existing regular file starting with the MCAP magic (a session
    saved under another name; a pipe or a device is not read: that could wait forever)."""
    p = Path(path)
    if p.suffix.lower() == SESSION_SUFFIX:
        return True
    if not p.is_file():
        return False
    try:
        with p.open("rb") as f:
            return f.read(len(MCAP_MAGIC)) == MCAP_MAGIC
    except OSError:
        return False


def is_imu_csv(path: str | os.PathLike[str]) -> bool:
    """An existing regular file whose header is that of IMU samples as pelvimon writes and reads them (a time
    column ``t_s`` and accelerometer columns ``acc_*``, after any ``#`` comment lines): a recording."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with p.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    for line in head.decode("utf-8", "replace").lstrip("\ufeff").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            cols = [c.strip().strip('"').lower() for c in line.split(",")]
            return "t_s" in cols and any(c.startswith("acc_") for c in cols)
    return False
