"""SIGTERM and SIGHUP end a session the way Ctrl-C does: the session file is closed with its index, the
summary is printed, and the exit code tells the signal (143 = 128 + SIGTERM, 129 = 128 + SIGHUP).

Every test runs the real command in a subprocess and signals it once it is recording."""

from __future__ import annotations

import asyncio
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
from _session_proc import CLI, assert_complete, default_stop_signals, env, finish, start, wait_recording  # noqa: E402

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
        preexec_fn=default_stop_signals,
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


def test_with_sigint_ignored_a_stop_signal_ends_an_event_loop_between_its_steps() -> None:
    """Under a running event loop the handler returns, and the KeyboardInterrupt comes from the loop's
    next callback: the task's own code goes on to its next await, its clean-up runs on cancellation."""
    from pelvimon.cli import _StopSignals

    state = _StopSignals()
    seen: list[str] = []

    async def session() -> None:
        try:
            state.handle(signal.SIGTERM, None)
            seen.append("handler returned")
            await asyncio.sleep(30)
            seen.append("slept")  # never: the interrupt ends the loop first
        finally:
            seen.append("clean-up")

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(session())
        with pytest.raises(KeyboardInterrupt):  # no loop running: the plain Ctrl-C at once
            state.handle(signal.SIGHUP, None)
    finally:
        signal.signal(signal.SIGINT, old)
    assert seen == ["handler returned", "clean-up"]
    assert state.received == signal.SIGTERM  # the first signal counts
    assert state.exit_code == 143


# SIGTERMs at random points of a busy event loop (queues handing items between tasks), SIGINT ignored. A
# KeyboardInterrupt raised where the signal lands used to end the task it landed in with that exception
# ("Task exception was never retrieved") or cut a wake-up halfway, so that the runner's clean-up waited
# forever (the watchdog's SIGKILL, 10 s later, ended the process).
_BUSY_LOOP = r"""
import asyncio, os, random, signal, subprocess, sys
from pelvimon.cli import stop_signals

signal.signal(signal.SIGINT, signal.SIG_IGN)
random.seed(7)
cleaned = []

async def worker(q):
    while True:
        await q.get()

async def producer(q):
    while True:
        for _ in range(3):
            q.put_nowait(1)
        await asyncio.sleep(0)

async def main():
    qs = [asyncio.Queue() for _ in range(4)]
    tasks = [asyncio.create_task(worker(q)) for q in qs] + [asyncio.create_task(producer(q)) for q in qs]
    try:
        await asyncio.gather(*tasks)
    finally:
        cleaned.append(1)

n = int(sys.argv[1])
for i in range(n):
    pid = os.getpid()
    watchdog = subprocess.Popen(
        ["sh", "-c", f"sleep {random.uniform(0.002, 0.03):.4f}; kill -TERM {pid}; sleep 10; kill -KILL {pid}"])
    cleaned.clear()
    try:
        with stop_signals():
            asyncio.run(main())
    except KeyboardInterrupt:
        pass
    watchdog.kill()
    watchdog.wait()
    assert cleaned, f"round {i}: the session's clean-up did not run"
print("rounds", n)
"""


def test_stop_signals_at_random_points_of_a_busy_event_loop_end_it_cleanly() -> None:
    rounds = 200
    r = subprocess.run(
        [sys.executable, "-c", _BUSY_LOOP, str(rounds)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, f"exit code {r.returncode} (-9: a round hung); stderr: {r.stderr[-2000:]}"
    assert r.stdout.split() == ["rounds", str(rounds)]
    assert "never retrieved" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
