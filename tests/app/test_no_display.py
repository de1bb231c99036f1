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


# -- live without --sensor, review, and what counts as a display ----------------------------------------------
def _no_display_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PELVIMON_DATA_DIR"] = str(tmp_path)
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    # a hang (an invisible window waiting for ever) fails the test through the timeout
    return subprocess.run([sys.executable, "-m", "pelvimon.cli", *args], capture_output=True, text=True,
                          timeout=90, env=env)


def _sim_csv(tmp_path):
    from pelvimon.sensors.csv_source import write_imu_csv
    from pelvimon.sensors.simulator import SimParams, simulate

    path = tmp_path / "run.csv"
    write_imu_csv(path, simulate(SimParams(seconds=30, rate_hz=104.0, seed=2)).batch)
    return path


def test_live_without_a_display_or_a_sensor_says_what_to_do(tmp_path) -> None:
    r = _cli(["live"], _no_display_env(tmp_path))
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "no display found" in r.stderr
    assert "--sensor SPEC" in r.stderr and "terminal dashboard" in r.stderr and "pelvimon scan" in r.stderr


def test_live_with_a_sensor_without_a_display_shows_the_terminal_dashboard(tmp_path) -> None:
    out = tmp_path / "live.mcap"
    r = _cli(["live", "--sensor", "emulated:movesense?speed=8", "--seconds", "3", "-o", str(out)],
             _no_display_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "no display found" in r.stderr and "terminal dashboard" in r.stderr
    assert "cadence" in r.stdout and f"session recorded to {out}" in r.stdout


def test_review_without_a_display_fails_at_once_and_names_what_works(tmp_path) -> None:
    csv = _sim_csv(tmp_path)
    env = _no_display_env(tmp_path)
    for extra in ([], ["--seconds", "2"], ["--export", str(tmp_path / "x.csv"), "--seconds", "2"]):
        r = _cli(["review", str(csv), *extra], env)
        assert r.returncode == 2, r.stderr
        line = r.stderr.strip()
        assert line.count("\n") == 0 and line.startswith("pelvimon review: error: no display found"), line
        assert "--export FILE.csv" in line and "--screenshot FILE.png" in line
    assert not (tmp_path / "x.csv").exists()  # failed before doing anything


def test_review_export_and_screenshot_work_without_a_display(tmp_path) -> None:
    csv = _sim_csv(tmp_path)
    env = _no_display_env(tmp_path)
    steps = tmp_path / "steps.csv"
    r = _cli(["review", str(csv), "--export", str(steps)], env)
    assert r.returncode == 0, r.stderr
    assert f"to {steps}" in r.stdout and steps.read_text().startswith("side,")
    png = tmp_path / "review.png"
    r = _cli(["review", str(csv), "--screenshot", str(png)], env)
    assert r.returncode == 0, r.stderr
    assert png.stat().st_size > 10_000


def test_what_counts_as_a_display(monkeypatch) -> None:
    from pelvimon.commands.live import display_problem

    for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(k, raising=False)
    if os.name == "nt" or sys.platform == "darwin":
        assert display_problem() is None
        return
    assert display_problem() == "DISPLAY/WAYLAND_DISPLAY unset"
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # chosen explicitly: tests, screenshots
    assert display_problem() is None
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")  # Qt would abort without an X display
    assert "QT_QPA_PLATFORM=xcb" in (display_problem() or "")
    monkeypatch.setenv("DISPLAY", ":0")
    assert display_problem() is None
    monkeypatch.setenv("QT_QPA_PLATFORM", "wayland;xcb")
    assert display_problem() is None
    monkeypatch.delenv("DISPLAY")
    assert display_problem() is not None
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert display_problem() is None
