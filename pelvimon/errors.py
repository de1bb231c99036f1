"""Errors the command line turns into one clear line (never a traceback)."""

from __future__ import annotations


class PelvimonError(Exception):
    """A failure the user can act on. The message says what was wrong and what to do. Exit code 1."""

    exit_code = 1


class UsageError(PelvimonError):
    """The command line itself was wrong. Exit code 2."""

    exit_code = 2
