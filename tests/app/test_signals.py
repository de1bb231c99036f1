"""SIGTERM and SIGHUP end a session the way Ctrl-C does: the session file is closed with its index, the
summary is printed, and the exit code tells the signal (143 = 128 + SIGTERM, 129 = 128 + SIGHUP).

Every test runs the real command in a subprocess and signals it once it is recording."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _session_proc import CLI, assert_complete, env, finish, start, wait_recording  # noqa: E402

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

# 20x real time and a long --seconds: the session is still running when the signal comes
SENSOR = "emulated:movesense?speed=20&seed=3"


def _start(args: list[str], tmp_path: Path, preexec: Callable[[], object] | None = None) -> subprocess.Popen:
    return start(args, tmp_path / "data", preexec)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_record_ends_cleanly_on_sigterm_and_sighup(tmp_path: Path, sig: int, code: int) -> None:
    out = tmp_path / "s.mcap"
    proc = _start(["record", "--sensor", SENSOR, "--seconds", "600", "-o", str(out)], tmp_path)
    wait_recording(proc, out)
    proc.send_signal(sig)
    stdout, stderr = finish(proc)
    assert proc.returncode == code, stderr
    lines = stdout.strip().splitlines()
    assert lines and lines[0].startswith("recorded ") and lines[0].endswith(f"-> {out}"), stdout
    assert float(lines[0].split()[1]) < 600.0  # ended by the signal, not by --seconds
    assert f"stopped by {signal.Signals(sig).name}" in stderr and "Traceback" not in stderr
    assert "Ctrl-C" not in stderr  # the stop is not put down to a key the user never pressed
    assert "ERROR" not in stderr and "destroyed" not in stderr  # nothing left pending on the event loop
    assert_complete(out)


def test_record_ends_cleanly_on_sigterm_with_sigint_ignored(tmp_path: Path) -> None:
    """A script's background job (`pelvimon record ... &` without job control) starts with SIGINT
    ignored; SIGTERM still ends the session cleanly."""
    out = tmp_path / "bg.mcap"
    proc = _start(["record", "--sensor", SENSOR, "--seconds", "600", "-o", str(out)], tmp_path,
                  preexec=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_recording(proc, out)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = finish(proc)
    assert proc.returncode == 143, stderr
    assert stdout.startswith("recorded ") and "Traceback" not in stderr
    assert_complete(out)


def test_sighup_stays_ignored_under_nohup(tmp_path: Path) -> None:
    out = tmp_path / "nohup.mcap"
    proc = _start(["record", "--sensor", SENSOR, "--seconds", "600", "-o", str(out)], tmp_path,
                  preexec=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_recording(proc, out)
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    assert proc.poll() is None, "SIGHUP ended a session started under nohup"
    proc.send_signal(signal.SIGTERM)
    _, stderr = finish(proc)
    assert proc.returncode == 143, stderr
    assert_complete(out)


def test_record_survives_the_terminal_going_away(tmp_path: Path) -> None:
    """An SSH disconnect: the terminal closes (writes fail with EIO), then SIGHUP comes."""
    import pty

    out = tmp_path / "ssh.mcap"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "record", "--sensor", SENSOR, "--seconds", "600", "-o", str(out)],
        stdin=slave, stdout=slave, stderr=slave, env=env(tmp_path / "data"), start_new_session=True,
    )
    os.close(slave)
    seen: list[bytes] = []

    def drain() -> None:  # keep the pty from filling up while the terminal is there
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            seen.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_recording(proc, out)
        os.close(master)
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 129, b"".join(seen)[-2000:]
    assert_complete(out)


def test_live_headless_ends_cleanly_on_sighup(tmp_path: Path) -> None:
    out = tmp_path / "live.mcap"
    proc = _start(["live", "--headless", "--sensor", SENSOR, "-o", str(out)], tmp_path)
    wait_recording(proc, out)
    proc.send_signal(signal.SIGHUP)
    stdout, stderr = finish(proc)
    assert proc.returncode == 129, stderr
    assert stdout.rstrip().splitlines()[-2:] == [f"session recorded to {out}", f"review it with: pelvimon review {out}"]
    assert "stopped by SIGHUP" in stderr and "Traceback" not in stderr
    assert_complete(out)


def test_demo_headless_ends_cleanly_on_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "demo.mcap"
    proc = _start(["demo", "--headless", "--speed", "20", "-o", str(out)], tmp_path)
    wait_recording(proc, out)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = finish(proc)
    assert proc.returncode == 143, stderr
    assert f"session recorded to {out}" in stdout and "Traceback" not in stderr
    assert_complete(out)


def test_the_exit_codes_are_in_the_help() -> None:
    r = subprocess.run([*CLI, "record", "--help"], capture_output=True, text=True, timeout=60)
    text = " ".join(r.stdout.split())
    assert "SIGTERM" in text and "SIGHUP" in text and "143" in text and "129" in text
