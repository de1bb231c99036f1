"""`pelvimon record` and `pelvimon replay` end to end, including a SIGKILL in the middle of a recording."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.session_file import SessionReader
from pelvimon.sensors.source import RawNotification

CLI = [sys.executable, "-m", "pelvimon.cli"]


def test_record_then_replay(tmp_path: Path) -> None:
    out = tmp_path / "s.mcap"
    r = subprocess.run(
        [*CLI, "record", "--sensor", "emulated:movesense?speed=20&loss=0.05&disconnect_at=12&seed=2",
         "--seconds", "30", "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("recorded 30.") and str(out) in r.stdout
    assert "reconnecting" in r.stderr and "gap" in r.stderr
    rep = subprocess.run([*CLI, "replay", str(out)], capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    # the replay sees the same samples and losses as the recording did
    rec_line = r.stdout.splitlines()[0].split(" -> ")[0].replace("recorded", "")
    assert rep.stdout.splitlines()[0].replace("replayed", "").split(",")[:2] == rec_line.split(",")[:2]


def test_record_refuses_to_overwrite_and_bad_specs(tmp_path: Path) -> None:
    out = tmp_path / "s.mcap"
    out.write_bytes(b"keep me")
    r = subprocess.run([*CLI, "record", "--sensor", "emulated:movesense", "--seconds", "1", "-o", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "exists already" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == b"keep me"
    r = subprocess.run([*CLI, "record", "--sensor", "emulated:movesense?los=0.1", "-o", str(tmp_path / "x.mcap")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "los" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*CLI, "replay", str(tmp_path / "nothing.mcap")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no such session file" in r.stderr and "Traceback" not in r.stderr


def test_sigkill_during_record_loses_at_most_the_last_second(tmp_path: Path) -> None:
    out = tmp_path / "killed.mcap"
    proc = subprocess.Popen(
        [*CLI, "record", "--sensor", "emulated:movesense?speed=1&seed=4", "--seconds", "600", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size > 20_000):
            time.sleep(0.2)
        assert out.exists(), "recording never started"
        time.sleep(3.0)
        t_kill = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader = SessionReader(out)
    items = list(reader.items())
    assert not reader.complete  # no summary section: the writer never finished
    raws = [i for i in items if isinstance(i, RawNotification)]
    batches = [i for i in items if isinstance(i, ImuBatch)]
    assert raws and batches
    # everything received up to about one second before the kill is there
    t_last = raws[-1].t_host_s
    recorded_s = t_last - raws[0].t_host_s
    assert recorded_s > 3.0 - 1.2, f"only {recorded_s:.2f} s recovered"
    del t_kill


def test_python_dash_m_pelvimon_is_the_command() -> None:
    r = subprocess.run([sys.executable, "-m", "pelvimon", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("pelvimon ")
    r = subprocess.run([sys.executable, "-m", "pelvimon", "analyze", "/nonexistent.csv"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "no such file" in r.stderr


def test_replay_log_is_in_session_time_order(tmp_path: Path) -> None:
    """An alert's line is stamped when it was raised, after the steps that made the difference credible
    (its difference began earlier, at ``t_start_s``, which the line names): the log stays in time order."""
    rec = Path(__file__).parents[2] / "recordings" / "emulated" / "movesense_weak_left_glute.mcap"
    r = subprocess.run([*CLI, "replay", str(rec), "--speed", "20", "-o", str(tmp_path / "r.mcap")],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    stamped = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
    times = [float(ln[1:].split(" s]")[0]) for ln in stamped]
    assert len(times) > 8 and times == sorted(times), stamped
    alert = [ln for ln in stamped if " ALERT " in ln]
    assert len(alert) == 1 and "ALERT started (the difference since 18.0 s): Left stance" in alert[0]
    assert 20.0 < float(alert[0][1:].split(" s]")[0]) < 40.0


@pytest.mark.parametrize("name", ["movesense_weak_left_glute", "polar_pmd_symmetric"])
def test_a_fast_replay_logs_what_a_slow_one_does(name: str, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    """A replay that ended before the log's printer first woke showed no progress and no alert line after
    it (a fast machine, or a short file): the lines drained at the end were dropped."""
    from pelvimon.cli import main
    from pelvimon.commands import _session

    rec = Path(__file__).parents[2] / "recordings" / "emulated" / f"{name}.mcap"
    logs = []
    for every in (1e-4, 1e6):  # the printer keeping up; the printer never waking before the end
        monkeypatch.setattr(_session, "PRINT_EVERY_S", every)
        assert main(["replay", str(rec)]) == 0
        out, err = capsys.readouterr()
        logs.append((out, err))
    assert logs[0] == logs[1]
    stamped = [ln for ln in logs[1][1].splitlines() if ln.startswith("[")]
    last = float(stamped[-1][1:].split(" s]")[0])
    assert last > 45.0 and len(stamped) >= 11, stamped  # (a line every 5 s of a 50-55 s session)
    assert sum(" ALERT started " in ln for ln in stamped) == (name == "movesense_weak_left_glute")


def test_alert_lines_name_when_the_alert_started_and_ended() -> None:
    from pelvimon.commands._session import _alert_line
    from pelvimon.dsp.alerts import AlertEvent
    from pelvimon.dsp.records import Alert

    al = Alert("cpd_deg", "L", 8.0, 4.0, 2.0, "abs_diff", 18.0, None, "drop")
    assert _alert_line(AlertEvent("started", al), 28.3) == "[   28.3 s] ALERT started (the difference since 18.0 s): drop"
    ended = AlertEvent("ended", Alert("cpd_deg", "L", 8.0, 4.0, 2.0, "abs_diff", 18.0, 40.5, "drop"))
    assert _alert_line(ended, 41.0) == "[   40.5 s] ALERT ended (since 18.0 s): drop"
