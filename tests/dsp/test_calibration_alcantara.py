"""Forward sign of the calibration on real treadmill RUNNING (Alcantara et al. 2021/2022: sacral
accelerometer, one runner, 31 trials of 5 s, 2.5-4.2 m/s, slopes -10..+10 deg).

The data has two axes (vertical and anterior-posterior, in g, 500 Hz; the medio-lateral axis is not
recorded and is fed as zeros) and no still period, so gravity comes from the gait mean. The AP axis sign
is not documented; the data says it is positive forwards: its mean falls steadily from downhill to
uphill running (runners lean forwards uphill, tipping an anterior axis downwards), which the test checks
first. Then every trial that calibrates must find forward = +AP (none may find -AP).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pelvimon.dsp.calibration import CalibrationParams, MountCalibration

G = 9.80665


def test_running_forward_sign_on_real_data(shared_dir: Path) -> None:
    d = shared_dir / "datasets" / "alcantara_running_sacral_grf"
    if not (d / "Accelerometer_one_sub.csv.gz").is_file():
        pytest.fail(f"dataset missing: {d}")
    acc_g = pd.read_csv(d / "Accelerometer_one_sub.csv.gz", header=None).to_numpy(dtype=float)
    info = pd.read_csv(d / "Sub_Info_one_sub.csv.gz")
    vert, ap = acc_g[:, :2480], acc_g[:, 2480:]
    slopes = info["Slope"].to_numpy(dtype=float)
    mean_ap_by_slope = [ap[slopes == s].mean() for s in (-10, -5, 0, 5, 10)]
    assert np.all(np.diff(mean_ap_by_slope) < 0), mean_ap_by_slope  # +AP is anterior

    # 5 s per trial: decide after 3 strides in 1 s blocks (defaults need longer recordings)
    params = CalibrationParams(gait_gravity_strides=3, forward_strides=3, block_s=1.0, skip_steps=2)
    t = np.arange(vert.shape[1]) / 500.0
    calibrated = wrong = 0
    for k in range(vert.shape[0]):
        acc = np.stack([ap[k], np.zeros_like(ap[k]), vert[k]], axis=1) * G
        cal = MountCalibration(params).update(t, acc, None)
        if cal.state_ != "calibrated":
            continue
        calibrated += 1
        wrong += int(cal.forward_sensor_[0] <= 0)
    assert wrong == 0
    assert calibrated >= 25, calibrated  # 27 / 31 measured; the others stay undecided, never wrong
