"""A session command run in a subprocess and stopped by a signal once it is recording (the signal tests of
tests/app and tests/gui)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.session_file import SessionReader
from pelvimon.sensors.source import RawNotification

CLI = [sys.executable, "-m", "pelvimon.cli"]


def env(data_dir: Path) -> dict[str, str]:
    """The environment of the subprocess: an offscreen Qt, its own data folder, and Python's fault handler
    (on SIGABRT it writes every thread's stack to stderr: :func:`finish` sends one to a session that hangs)."""
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", PELVIMON_DATA_DIR=str(data_dir), PYTHONFAULTHANDLER="1")


def default_stop_signals() -> None:
    """In the child before it runs: SIGINT, SIGTERM and SIGHUP at their defaults. A process started with one
    ignored keeps it ignored (as under ``nohup``, or a background job of a script, whose SIGINT the shell
    ignores), and so would this child when the tests themselves run that way: the tests of those cases
    ignore the signal in their own ``preexec``."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_DFL)


def start(args: list[str], data_dir: Path, preexec: Callable[[], object] | None = None) -> subprocess.Popen:
    """``pelvimon ARGS`` in a subprocess, its output captured as text; ``preexec`` runs in the child after
    its stop signals were set to their defaults."""

    def child() -> None:
        default_stop_signals()
        if preexec is not None:
            preexec()

    return subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(data_dir),
        preexec_fn=child,
    )


def wait_recording(proc: subprocess.Popen, out: Path, min_bytes: int = 20_000) -> None:
    """Return once ``out`` holds ``min_bytes``; fail if the process ended or 60 s passed first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.stat().st_size > min_bytes:
            return
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the session never started recording (exit code {proc.poll()})")


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    """The process's stdout and stderr once it ended; fail if it still runs 60 s later, with the stacks of
    its threads where it hung (SIGABRT to its fault handler)."""
    try:
        return proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"still running 60 s after the signal; stderr: {err[-6000:]}")


def assert_complete(path: Path) -> None:
    """The session file was closed (summary written) and holds notifications and samples."""
    reader = SessionReader(path)
    items = list(reader.items())
    assert reader.complete, "the session file was not closed (no summary section)"
    assert any(isinstance(i, RawNotification) for i in items)
    assert any(isinstance(i, ImuBatch) for i in items)
