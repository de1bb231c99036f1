"""Forward / left sign of the calibration on real walking (Voisard et al., IPOL 2023: L5 IMU with
reference foot events from foot-mounted IMUs, 19 adults, 110 trials).

Two independent checks of the sign, over every trial:

1. Sensor geometry: the L5 sensor lies on the back with its z axis normal to the case. At rest the
   specific force has a clearly positive z component in every trial (the sacral surface faces
   posterior-superior), so z points backwards and out of the body: forward is the horizontal part of -z.
2. Gait: during each foot's loading response the opposite side of the pelvis drops, so with the design's
   sign (obliquity > 0 lifts the left side) the obliquity rises after a LEFT initial contact and falls
   after a RIGHT one. Initial contacts come from the foot sensors, independent of the L5 sensor.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pelvimon.dsp.calibration import MountCalibration
from pelvimon.dsp.orientation import PelvisOrientation


def _trials(shared_dir: Path) -> list[Path]:
    d = shared_dir / "datasets" / "voisard_l5_walking" / "GaitData"
    files = sorted(d.glob("*_lb.txt.gz"))
    if len(files) < 100:
        pytest.fail(f"expected the 110 Voisard L5 trials in {d}, found {len(files)}")
    return files


def _loading_change(obl: np.ndarray, counter: np.ndarray, events: list[list[int]], u0: int, u1: int) -> float:
    """Mean obliquity change over 0.15 s after each initial contact outside the U-turn, deg. The events are
    in packet-counter units; the file lacks some packets, so they are found by the counter, not the row."""
    ics = [int(np.searchsorted(counter, e)) for _, e in events if not (u0 - 50 <= e <= u1 + 50)]
    k = np.searchsorted(counter, counter[[i for i in ics if i < counter.size]] + 15)
    return float(np.mean([obl[j] - obl[i] for i, j in zip(ics, k.tolist(), strict=False) if j < obl.size]))


def test_walking_forward_and_left_signs_on_real_data(shared_dir: Path) -> None:
    n = geometry_ok = gait_ok = 0
    discordant = []
    for path in _trials(shared_dir):
        sig = pd.read_csv(path, sep="\t", skiprows=1)
        acc = np.ascontiguousarray(sig[["Acc_X", "Acc_Y", "Acc_Z"]].to_numpy(dtype=float))
        gyr = np.ascontiguousarray(sig[["Gyr_X", "Gyr_Y", "Gyr_Z"]].to_numpy(dtype=float))
        meta = json.loads(gzip.open(path.with_name(path.name.replace("_lb.txt.gz", ".json.gz"))).read())
        counter = sig["PacketCounter"].to_numpy(dtype=np.int64)
        t = counter / 100.0
        cal = MountCalibration().update(t, acc, gyr)
        assert cal.state_ == "calibrated", path.name
        n += 1
        up = cal.gravity_sensor_
        back_fwd = np.array([0.0, 0.0, -1.0])
        back_fwd -= up * (up @ back_fwd)
        geometry_ok += int(cal.forward_sensor_ @ back_fwd / np.linalg.norm(back_fwd) > 0.7)
        m = PelvisOrientation(100.0, cal.mount_quat_wxyz_).update(t, acc, gyr)
        u0, u1 = meta["UTurnBoundaries"]

        obl = m.obliquity_deg
        ok = (
            _loading_change(obl, counter, meta["LeftFootEvents"], u0, u1) > 0
            and _loading_change(obl, counter, meta["RightFootEvents"], u0, u1) < 0
        )
        gait_ok += int(ok)
        if not ok:
            discordant.append(path.name)
    assert n == 110
    assert geometry_ok == n  # 110 / 110
    # 108 / 110: the two discordant trials (4-1, 4-2) have the same forward estimate as that subject's other
    # four trials, which agree; their reference most likely names the feet the other way round (every step
    # of theirs is sided the other way, and the pelvic roll after their reference heel strikes runs the
    # other way from all other trials: docs/dsp_gait.md, benchmarks/validate.py's reference check)
    assert gait_ok == n - 2 and discordant == ["4-1_lb.txt.gz", "4-2_lb.txt.gz"], discordant
