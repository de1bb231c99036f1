"""Errors the command line turns into one clear line (never a traceback)."""

from __future__ import annotations

import errno


class PelvimonError(Exception):
    """A failure the user can act on. The message says what was wrong and what to do. Exit code 1."""

    exit_code = 1


class UsageError(PelvimonError):
    """The command line itself was wrong. Exit code 2."""

    exit_code = 2


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for lack of space (ENOSPC, or a disk quota: EDQUOT)."""
    codes = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    return isinstance(exc, OSError) and exc.errno in codes
