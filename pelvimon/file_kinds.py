"""What kind of file a path names: a session file (MCAP) or, otherwise, CSV. Dependency-free, so that the
command line can check output paths without importing the session-file reader."""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

SESSION_SUFFIX = ".mcap"
"""The name ending of session files."""

MCAP_MAGIC = b"\x89MCAP0\r\n"
"""The first bytes of a session file (MCAP), whatever its name."""


def file_head(path: str | os.PathLike[str], n: int) -> bytes | None:
    """The first ``n`` bytes of an existing regular file; None for anything else (missing, a folder, a pipe
    or a device, which are not read: that could wait forever) or a file that cannot be read."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with p.open("rb") as f:
            return f.read(n)
    except OSError:
        return None


def is_session_file(path: str | os.PathLike[str], head: bytes | None = None) -> bool:
    """A session file: named ``.mcap``, or an existing regular file starting with the MCAP magic (a session
    saved under another name; a pipe or a device is not read: that could wait forever). ``head``: the
    file's first bytes (:func:`file_head`), when the caller has read them already."""
    if Path(path).suffix.lower() == SESSION_SUFFIX:
        return True
    return ((file_head(path, len(MCAP_MAGIC)) or b"") if head is None else head).startswith(MCAP_MAGIC)


STEP_TABLE_HEADER = "side,t_ic_s,"
"""How the per-step tables pelvimon writes begin (``analyze --csv``, ``review --export``): an output, which a
new one may replace."""


def _number(cell: str) -> bool:
    try:
        float(cell.strip().strip('"').replace(",", "."))
    except ValueError:
        return False
    return True


def is_imu_csv(path: str | os.PathLike[str]) -> bool:
    """An existing regular file that holds IMU samples, or anything like them: a recording, never to be
    overwritten.

    That is: a header of pelvimon's IMU columns (``t_s`` and ``acc_*``, after any ``#`` comment lines), or
    rows of at least four numbers (a time and three axes) separated by commas, semicolons or tabs, under a
    header of any names or none (the files ``--columns`` reads), also gzip-compressed. pelvimon's own
    per-step tables are not recordings."""
    head = file_head(path, 8192)
    if head is None:
        return False
    if head.startswith(b"\x1f\x8b"):  # gzip (csv_source.GZIP_MAGIC, not imported: this module stays dependency-free): 8 kB of its text
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 8192)
        except zlib.error:
            return False
    lines = [
        ln for ln in head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ][:4]
    if not lines:
        return False
    first = lines[0].strip().lower()
    cols = [c.strip().strip('"') for c in first.split(",")]
    if "t_s" in cols and any(c.startswith("acc_") for c in cols):
        return True
    if first.startswith(STEP_TABLE_HEADER):
        return False
    sep = ";" if ";" in first else "\t" if "\t" in first else ","  # (with semicolons, commas are decimal)
    rows = [ln.split(sep) for ln in lines[1:-1 if len(lines) > 2 else None]]  # (the last may be cut off)
    if all(_number(c) for c in lines[0].split(sep)):
        rows.insert(0, lines[0].split(sep))  # no header
    return bool(rows) and all(len(r) >= 4 and sum(_number(c) for c in r) >= 4 for r in rows)


BASELINE_FORMAT = "pelvimon-baseline"
"""The ``"format"`` of a runner's baseline (``analyze --save-baseline``)."""
TRUTH_FORMAT = "pelvimon-simulator-truth"
"""The ``"format"`` of a simulated session's truth (``simulate --truth``; written by the simulator)."""
KEPT_FORMATS = {BASELINE_FORMAT: "a runner's baseline", TRUTH_FORMAT: "the truth of a simulated session"}
"""The JSON files pelvimon writes that no other output may replace, with what they hold."""

_FORMAT_KEY = re.compile(rb'\A\s*\{\s*"format"\s*:\s*"(pelvimon-[a-z-]+)"')


def pelvimon_json_format(path: str | os.PathLike[str]) -> str | None:
    """The ``"format"`` of an existing regular file that is one of pelvimon's JSON documents (it comes first
    in them: :data:`BASELINE_FORMAT`, :data:`TRUTH_FORMAT`), None for any other file or none."""
    return json_format(file_head(path, 256) or b"")


def json_format(head: bytes) -> str | None:
    """The ``"format"`` of one of pelvimon's JSON documents from its first bytes (:func:`pelvimon_json_format`),
    None for anything else."""
    m = _FORMAT_KEY.match(head)
    return m.group(1).decode() if m else None
