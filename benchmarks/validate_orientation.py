"""Inclination accuracy of the pelvis orientation stage on the BROAD dataset (optical reference).

For each trial the IMU samples go through :class:`pelvimon.dsp.orientation.PelvisOrientation` (streaming,
causal, 6D, mount = identity, notification-sized chunks) and through ``offline_pelvis_orientation``. The
heading-free inclination error is the angle between the vertical seen in the IMU frame by the estimate
(from tilt and obliquity: the third row of ``Rz Rx Ry``) and by the optical reference (``opt_quat``,
IMU -> ENU). It needs no heading alignment because it does not depend on heading. RMSE over the
trial's movement samples with a valid reference, as in the BROAD paper.

Usage: python benchmarks/validate_orientation.py [DATASET_DIR] [--chunk N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from pelvimon.dsp.orientation import PelvisMotion, PelvisOrientation, offline_pelvis_orientation

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "broad_orientation"


def load_trial(path: Path, max_s: float | None = None) -> dict[str, np.ndarray | float]:
    """Read one BROAD trial (optionally only its first ``max_s`` seconds)."""
    with h5py.File(path, "r") as f:
        fs = float(f.attrs["sampling_rate"])
        n = f["imu_acc"].shape[0] if max_s is None else min(f["imu_acc"].shape[0], int(max_s * fs))
        return {
            "rate_hz": fs,
            "acc": np.asarray(f["imu_acc"][:n], dtype=np.float64),
            "gyr": np.asarray(f["imu_gyr"][:n], dtype=np.float64),
            "q_ref": np.asarray(f["opt_quat"][:n], dtype=np.float64),
            "movement": np.asarray(f["movement"][:n], dtype=bool),
        }


def vertical_in_sensor_from_angles(tilt_deg: np.ndarray, obliquity_deg: np.ndarray) -> np.ndarray:
    """World up expressed in the body frame, from tilt and obliquity ((N,) deg -> (N, 3))."""
    th, ph = np.radians(tilt_deg), np.radians(obliquity_deg)
    return np.stack([-np.cos(ph) * np.sin(th), np.sin(ph), np.cos(ph) * np.cos(th)], axis=1)


def vertical_in_sensor_from_quat(q_wxyz: np.ndarray) -> np.ndarray:
    """World up in the sensor frame for sensor->world quaternions ((N, 4) -> (N, 3)): third row of R."""
    w, x, y, z = q_wxyz.T
    return np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1)


def inclination_rmse_deg(motion: PelvisMotion, q_ref: np.ndarray, movement: np.ndarray) -> float:
    """Heading-free inclination RMSE over movement samples with a finite reference, deg."""
    ok = movement & np.all(np.isfinite(q_ref), axis=1) & motion.valid
    z_est = vertical_in_sensor_from_angles(motion.tilt_deg[ok], motion.obliquity_deg[ok])
    z_ref = vertical_in_sensor_from_quat(q_ref[ok])
    z_ref /= np.linalg.norm(z_ref, axis=1, keepdims=True)
    c = np.clip(np.sum(z_est * z_ref, axis=1), -1.0, 1.0)
    err = np.degrees(np.arccos(c))
    return float(np.sqrt(np.mean(err**2)))


def run_streaming(tr: dict, chunk: int) -> PelvisMotion:
    rate = float(tr["rate_hz"])  # type: ignore[arg-type]
    acc, gyr = tr["acc"], tr["gyr"]
    n = acc.shape[0]  # type: ignore[union-attr]
    t = np.arange(n) / rate
    po = PelvisOrientation(rate, [1.0, 0.0, 0.0, 0.0])
    parts = [po.update(t[i : i + chunk], acc[i : i + chunk], gyr[i : i + chunk]) for i in range(0, n, chunk)]  # type: ignore[index]
    return PelvisMotion.concat(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--chunk", type=int, default=10, help="samples per streaming chunk (default 10)")
    args = ap.parse_args(argv)
    files = sorted(args.dataset_dir.glob("*.hdf5"))
    if not files:
        print(f"no .hdf5 files in {args.dataset_dir}", file=sys.stderr)
        return 1
    print(f"{'trial':<48} {'dur_s':>7} {'stream_rmse_deg':>16} {'offline_rmse_deg':>17} {'stream_s':>9}")
    worst = 0.0
    for path in files:
        tr = load_trial(path)
        n = tr["acc"].shape[0]  # type: ignore[union-attr]
        t0 = time.perf_counter()
        m = run_streaming(tr, args.chunk)
        dt = time.perf_counter() - t0
        rate = float(tr["rate_hz"])  # type: ignore[arg-type]
        mo = offline_pelvis_orientation(np.arange(n) / rate, tr["acc"], tr["gyr"], [1, 0, 0, 0], rate)
        e_s = inclination_rmse_deg(m, tr["q_ref"], tr["movement"])  # type: ignore[arg-type]
        e_o = inclination_rmse_deg(mo, tr["q_ref"], tr["movement"])  # type: ignore[arg-type]
        worst = max(worst, e_s)
        print(f"{path.stem:<48} {n / rate:7.1f} {e_s:16.3f} {e_o:17.3f} {dt:9.3f}")
    print(f"worst streaming inclination RMSE: {worst:.3f} deg (target <= 1 deg)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
