"""Inclination accuracy of the orientation stage against the BROAD optical reference (real IMU data).

Heading-free inclination error (angle between the reference and estimated vertical in the IMU frame),
RMSE over movement samples, streaming in notification-sized chunks. Trials chosen for a pelvis sensor:
slow rotation (baseline) and fast translations with rests (accelerometer disturbance, like running).
The first 100 s of each trial keeps the test short (rest at the start, then about a minute of motion).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("validate_orientation", REPO / "benchmarks" / "validate_orientation.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.mark.parametrize(
    "trial", ["02_undisturbed_slow_rotation_B", "18_undisturbed_fast_translation_with_breaks_B", "24_disturbed_tapping_A"]
)
def test_broad_inclination_rmse_below_1_deg(shared_dir: Path, trial: str) -> None:
    path = shared_dir / "datasets" / "broad_orientation" / f"{trial}.hdf5"
    if not path.is_file():
        pytest.fail(f"dataset file missing: {path}")
    bench = _bench()
    tr = bench.load_trial(path, max_s=100.0)
    assert tr["movement"].sum() > 40 * tr["rate_hz"], "too little movement in the excerpt"
    m = bench.run_streaming(tr, chunk=10)
    rmse = bench.inclination_rmse_deg(m, tr["q_ref"], tr["movement"])
    assert rmse <= 1.0, rmse
