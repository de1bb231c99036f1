"""``pelvimon simulate`` end to end: files written, readable, equal to the library's simulation; bad values
give one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pelvimon.cli import main
from pelvimon.sensors.csv_source import read_imu_csv
from pelvimon.sensors.simulator import SimParams, SimTruth, simulate


def test_simulate_writes_csv_and_truth_matching_the_library(tmp_path: Path, capsys) -> None:
    csv_path, truth_path = tmp_path / "run.csv", tmp_path / "truth.json"
    argv = [
        "simulate", "-o", str(csv_path), "--truth", str(truth_path), "--seconds", "12", "--rate", "100",
        "--cadence", "180", "--cpd-left", "9", "--cpd-right", "4", "--tilt-range", "5", "--rotation-range", "14",
        "--contact-time", "0.22", "--step-time-asymmetry", "4", "--mount-euler-deg", "10", "-20", "90",
        "--seed", "3",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and str(csv_path) in out
    expected = simulate(
        SimParams(
            seconds=12.0, rate_hz=100.0, cadence_spm=180.0, cpd_left_deg=9.0, cpd_right_deg=4.0,
            tilt_range_deg=5.0, rotation_range_deg=14.0, contact_time_s=0.22, step_time_asymmetry_pct=4.0,
            mount_euler_deg=(10.0, -20.0, 90.0), seed=3,
        )
    )  # fmt: skip
    batch = read_imu_csv(csv_path)
    assert np.array_equal(batch.t_s, expected.batch.t_s)
    assert np.array_equal(batch.acc_mps2, expected.batch.acc_mps2)
    assert np.array_equal(batch.gyr_rads, expected.batch.gyr_rads)
    d = json.loads(truth_path.read_text())
    for key in ("side", "t_ic_s", "t_fc_s", "step_time_s", "contact_time_s", "cpd_deg"):
        assert key in d["steps"][0]
    assert set(d["samples"]) >= {"t_s", "tilt_deg", "obliquity_deg", "rotation_deg"}
    assert d["params"]["cadence_spm"] == 180.0
    truth = SimTruth.from_json(d)
    assert truth.steps == expected.truth.steps
    assert np.array_equal(truth.obliquity_deg, expected.truth.obliquity_deg)
    assert np.allclose(truth.mount_quat_wxyz, expected.truth.mount_quat_wxyz)


def test_simulate_ideal_walk_without_output_prints_a_summary(capsys) -> None:
    assert main(["simulate", "--gait", "walk", "--seconds", "10", "--ideal", "--cpd-left", "5"]) == 0
    out = capsys.readouterr().out
    assert "walk" in out and "CPD L 5.0" in out and "nothing written" in out


def test_simulate_a_session_of_bouts(tmp_path: Path, capsys) -> None:
    """--then adds bouts (standing --pause s between them): the CSV and the truth cover the whole session."""
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    argv = ["simulate", "--gait", "walk", "--seconds", "30", "--then", "run:40", "--then", "walk:25:100",
            "--end-stand", "4", "-o", str(out_csv), "--truth", str(out_json)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "walk 30 s, run 40 s, walk 25 s" in out and "samples" in out
    cads = [float(c) for c in out.split("cadence ")[1].split(" spm")[0].split(" / ")]
    assert 100 < cads[0] < 120 and 160 < cads[1] < 180 and 95 < cads[2] < 105
    truth = json.loads(out_json.read_text())
    assert [b["gait"] for b in truth["params"]["bouts"]] == ["walk", "run", "walk"]
    assert [b["stand_s"] for b in truth["params"]["bouts"]] == [5.0, 3.0, 3.0]
    assert [b["end_stand_s"] for b in truth["params"]["bouts"]] == [3.0, 3.0, 4.0]
    t = np.loadtxt(out_csv, delimiter=",", skiprows=1, usecols=0)
    assert t.shape[0] == 95 * 200 and np.all(np.diff(t) > 0)
    assert max(s["t_ic_s"] for s in truth["steps"]) < 95.0 - 4.0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--seconds", "-5"], "--seconds"),
        (["--cadence", "250"], "--cadence"),
        (["--cadence", "59"], "--cadence"),
        (["--rate", "0"], "--rate"),
        (["--rate", "15"], "the gait analysis needs at least 20 Hz"),
        (["--cpd-left", "-1"], "--cpd-left"),
        (["--contact-time", "0.5"], "--contact-time"),
        (["--gait", "hop"], "--gait"),
        (["--mount-euler-deg", "1", "2"], "--mount-euler-deg"),
        (["--seconds", "abc"], "--seconds"),
        (["--step-time-asymmetry", "80"], "--step-time-asymmetry"),
        (["--seconds", "20", "--end-stand", "15"], "--end-stand"),
        (["--then", "jog:60"], "GAIT:SECONDS"),
        (["--then", "run:abc"], "GAIT:SECONDS"),
        (["--then", "run:60", "--pause", "0"], "--pause"),
        (["--then", "walk:60:300"], "--then walk:60:300: SPM must be"),
        (["--then", "run:-5"], "--then run:-5: SECONDS must be"),
    ],
)
def test_bad_values_are_one_line_exit_2(args: list[str], fragment: str, capsys) -> None:
    try:
        code = main(["simulate", *args])
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert fragment in err


def test_unwritable_output_is_one_line_exit_1(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pelvimon.cli",
            "simulate",
            "--seconds",
            "2",
            "-o",
            str(tmp_path / "no" / "x.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "does not exist" in r.stderr
