"""``pelvimon demo``, ``live`` and ``review`` end to end, offscreen, on an accelerated emulated sensor."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from pelvimon.cli import main
from pelvimon.sensors.session_file import SessionReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _session_proc import assert_complete, finish, start, wait_recording  # noqa: E402

FAST = "emulated:movesense?speed=8&seconds=60&cpd_left=8&cpd_right=4"


def _png_colours(path: Path) -> int:
    from PySide6 import QtGui

    img = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGB32)
    buf = bytes(img.constBits())
    arr = np.frombuffer(buf, dtype=np.uint32).reshape(img.height(), img.bytesPerLine() // 4)
    return len(np.unique(arr[:, : img.width()]))


def test_demo_window_records_and_screenshots(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PELVIMON_DATA_DIR", str(tmp_path / "data"))
    png = tmp_path / "live.png"
    rc = main(["demo", "--seconds", "4", "--speed", "8", "--screenshot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0
    assert png.stat().st_size > 20000 and _png_colours(png) > 20
    files = list((tmp_path / "data" / "sessions").glob("*demo*.mcap"))
    assert len(files) == 1 and f"session recorded to {files[0]}" in out
    reader = SessionReader(files[0])
    kinds = {type(i).__name__ for i in reader.items()}
    assert reader.complete and {"RawNotification", "ImuBatch"} <= kinds


def test_demo_window_with_an_unwritable_screenshot_still_names_its_session(tmp_path, monkeypatch, capsys) -> None:
    from PySide6 import QtGui

    monkeypatch.setenv("PELVIMON_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "taken").write_text("a file where the screenshot's folder should be")
    # a path that cannot be written is refused before the session starts
    rc = main(["demo", "--seconds", "2", "--speed", "8", "--screenshot", str(tmp_path / "taken" / "x.png")])
    cap = capsys.readouterr()
    assert rc == 1 and "taken is a file, not a folder" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()
    # a screenshot that fails at the end (the disk filled meanwhile): the session is still closed and named
    monkeypatch.setattr(QtGui.QPixmap, "save", lambda *a, **k: False)
    rc = main(["demo", "--seconds", "2", "--speed", "8", "--screenshot", str(tmp_path / "x.png")])
    cap = capsys.readouterr()
    assert rc == 1
    assert "cannot write the screenshot" in cap.err and len(cap.err.strip().splitlines()) == 1
    files = list((tmp_path / "data" / "sessions").glob("*demo*.mcap"))
    assert len(files) == 1 and f"session recorded to {files[0]}" in cap.out
    assert "screenshot saved" not in cap.out
    reader = SessionReader(files[0])
    kinds = {type(i).__name__ for i in reader.items()}
    assert "ImuBatch" in kinds and reader.complete


def test_demo_headless_without_tty_prints_lines(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PELVIMON_DATA_DIR", str(tmp_path))
    out_file = tmp_path / "s.mcap"
    rc = main(["demo", "--headless", "--seconds", "3", "--speed", "8", "-o", str(out_file)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "cadence" in out and "CPD L" in out and "loss" in out
    assert f"session recorded to {out_file}" in out
    assert SessionReader(out_file).header.source.protocol == "movesense"


def test_live_usage_errors(capsys) -> None:
    assert main(["live", "--headless"]) == 2
    assert "--sensor" in capsys.readouterr().err
    assert main(["live", "--headless", "--sensor", "emulated:nosuch"]) == 2
    assert "unknown emulated protocol" in capsys.readouterr().err
    assert main(["live", "--sensor", FAST, "--screenshot", "x.jpg"]) == 2
    assert main(["live", "--sensor", FAST, "--no-record", "-o", "a.mcap"]) == 2


def test_review_cli_export_and_screenshot(tmp_path, capsys) -> None:
    from pelvimon.sensors.csv_source import write_imu_csv
    from pelvimon.sensors.simulator import SimParams, simulate

    src = tmp_path / "run.csv"
    write_imu_csv(src, simulate(SimParams(seconds=30, rate_hz=104.0, seed=2)).batch)
    out = tmp_path / "steps.csv"
    png = tmp_path / "review.png"
    rc = main(["review", str(src), "--export", str(out), "--screenshot", str(png)])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("side,t_ic_s,")
    assert f"wrote {len(lines) - 1} steps" in capsys.readouterr().out
    assert len(lines) > 40
    assert _png_colours(png) > 20
    assert main(["review", str(tmp_path / "missing.mcap")]) == 1


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery")
def test_headless_live_ends_cleanly_on_ctrl_c(tmp_path) -> None:
    out_file = tmp_path / "ctrlc.mcap"
    proc = start(["live", "--headless", "--sensor", FAST, "-o", str(out_file)], tmp_path)
    wait_recording(proc, out_file, min_bytes=5000)
    proc.send_signal(signal.SIGINT)
    out, err = finish(proc)
    assert proc.returncode == 0, err
    assert "stopping..." in out and f"session recorded to {out_file}" in out
    assert_complete(out_file)  # closed properly, summary written


def test_review_export_honours_the_range(tmp_path, capsys) -> None:
    """`--range T0 T1 --export` writes the steps of the selected range (initial contact in [T0, T1]), usable
    or not (the window's range statistics use the usable ones among them); without --range every step; a
    range past the session's steps says where they are."""
    from pelvimon.gui.review_data import load_review
    from pelvimon.sensors.csv_source import write_imu_csv
    from pelvimon.sensors.simulator import SimParams, simulate

    src = tmp_path / "run.csv"
    write_imu_csv(src, simulate(SimParams(seconds=40, rate_hz=104.0, seed=5)).batch)
    every = tmp_path / "all.csv"
    part = tmp_path / "part.csv"
    assert main(["review", str(src), "--export", str(every)]) == 0
    assert main(["review", str(src), "--range", "15", "25", "--export", str(part)]) == 0
    out = capsys.readouterr().out
    data = load_review(src)
    n_all = len(every.read_text().splitlines()) - 1
    rows = part.read_text().splitlines()
    header = rows[0].split(",")
    t_ic = [float(r.split(",")[header.index("t_ic_s")]) for r in rows[1:]]
    expected = [s for s in data.steps if 15.0 <= s.t_ic_s <= 25.0]
    assert n_all == len(data.steps) and 0 < len(t_ic) < n_all
    assert len(t_ic) == len(expected) and all(15.0 <= t <= 25.0 for t in t_ic)
    assert f"wrote {len(t_ic)} steps (of {n_all}: initial contact from 15 to 25 s) to {part}" in out
    assert sum(data.range_stats(15.0, 25.0)["cpd_deg"][side][2] for side in "LR") <= len(t_ic)
    assert main(["review", str(src), "--range", "100", "200", "--export", str(tmp_path / "none.csv")]) == 0
    out = capsys.readouterr().out
    assert "wrote 0 steps" in out
    assert f"no step in that range: the session's steps run from {data.steps[0].t_ic_s:.1f} to " in out


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_live_window_ends_cleanly_on_ctrl_c_and_sigterm(tmp_path, sig, code) -> None:
    """Ctrl-C in the terminal and SIGTERM close the window the normal way: recording closed, file named."""
    out_file = tmp_path / "window.mcap"
    proc = start(["live", "--sensor", FAST, "-o", str(out_file)], tmp_path)
    wait_recording(proc, out_file, min_bytes=5000)
    proc.send_signal(sig)
    out, err = finish(proc)
    assert proc.returncode == code, err
    assert f"session recorded to {out_file}" in out and "Traceback" not in err
    assert_complete(out_file)


def test_a_review_screenshot_off_screen_prints_no_qt_noise(tmp_path) -> None:
    """Qt's offscreen platform said "This plugin does not support propagateSizeHints()" twice on stderr."""
    import subprocess

    from pelvimon.sensors.csv_source import write_imu_csv
    from pelvimon.sensors.simulator import SimParams, simulate

    src = tmp_path / "run.csv"
    write_imu_csv(src, simulate(SimParams(seconds=20, rate_hz=104.0, seed=2)).batch)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-m", "pelvimon", "review", str(src), "--screenshot", str(tmp_path / "r.png")],
                       capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == 0 and "screenshot saved" in r.stdout
    assert r.stderr == "", r.stderr
