"""Writing a command's output file so that a failed write never destroys what was there.

A file is written whole to a temporary file next to it and then renamed over the target (atomic on the same
file system), so a full disk, a lost network share or an interrupted run leaves either the old file or the
new one, never half of either. A target that is not a regular file (``/dev/stdout``, a named pipe) is
written directly: nothing can be renamed over it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pelvimon.errors import PelvimonError


def write_output(path: str | os.PathLike[str], data: str | bytes, what: str = "") -> Path:
    """Write ``data`` (text as UTF-8) to ``path``, replacing the file only once all of it is written.

    Parameters
    ----------
    path : str or Path
        The output file.
    data : str or bytes
        The whole content.
    what : str
        What the file is ("report", "baseline"...), for the message.

    Returns
    -------
    Path

    Raises
    ------
    PelvimonError
        The file cannot be written (one line naming it and the reason); the file that was there is kept.
    """
    p = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    name = f"{what} {p}" if what else str(p)
    try:
        if p.exists() and not p.is_file():  # a device or a pipe: written in place
            with p.open("wb") as f:
                f.write(raw)
            return p
        target = p.resolve() if p.is_symlink() else p  # (a link stays a link: its file is replaced)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        # (created as open() would create the file itself: the mode is 0o666 less the umask)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise PelvimonError(
            f"cannot write {name}: {exc.strerror or exc}; check the path and free space (nothing was changed there)"
        ) from None
    return p
