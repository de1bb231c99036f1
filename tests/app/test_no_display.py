"""On a machine without a display, `pelvimon demo` says so and shows the terminal dashboard instead of
running an invisible window."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_without_a_display_falls_back_to_the_terminal(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PELVIMON_DATA_DIR"] = str(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "pelvimon.cli", "demo", "--seconds", "4", "--speed", "3"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "no display found" in r.stderr and "terminal dashboard" in r.stderr
    assert "cadence" in r.stdout and "session recorded to" in r.stdout
    assert list(tmp_path.rglob("*.mcap")), "the demo session was not recorded"
