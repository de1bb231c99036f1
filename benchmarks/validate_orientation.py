"""Inclination accuracy of the pelvis orientation stage on the BROAD dataset (optical reference).

For each trial the IMU samples go through :class:`pelvimon.dsp.orientation.PelvisOrientation` (streaming,
causal, 6D, mount = identity, notification-sized chunks) and through ``offline_pelvis_orientation``. The
heading-free inclination error is the angle between the vertical seen in the IMU frame by the estimate
(from tilt and obliquity: the third row of ``Rz Rx Ry``) and by the optical reference (``opt_quat``,
IMU -> ENU). It needs no heading alignment because it does not depend on heading. RMSE over the
trial's movement samples with a valid reference, as in the BROAD paper.

A second part runs the simulator (``pelvimon.sensors.simulator``) with random mountings, noise and bias on:
calibration sign and error, per-step tilt / obliquity / rotation range errors, obliquity RMSE, and the CPD
error computed from the truth's step times (max drop of the swing side between IC and toe-off relative to
IC). Angles are compared relative to standing (the simulator's static tilt offset is removed). A third
part times the streaming stage.

Usage: python benchmarks/validate_orientation.py [DATASET_DIR] [--chunk N] [--sims N] [--skip-broad]
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


def _cpd(obl: np.ndarray, side: str) -> float:
    """Largest drop of the swing side relative to the first sample (obliquity > 0 lifts the left side)."""
    rel = obl - obl[0]
    return float(np.max(rel if side == "L" else -rel))


def simulator_validation(n_sims: int, seconds: float = 40.0) -> None:
    from scipy.spatial.transform import Rotation

    from pelvimon.dsp.calibration import MountCalibration
    from pelvimon.sensors.simulator import SimParams, simulate

    rng = np.random.default_rng(2024)
    rows = []
    sign_ok = {"run": 0, "walk": 0}
    count = {"run": 0, "walk": 0}
    errs: dict[str, list[np.ndarray]] = {k: [] for k in ("tilt", "obliquity", "rotation", "cpd")}
    obl_rmse, tilt_rmse, cal_t = [], [], {"run": [], "walk": []}
    mount_errs: dict[str, list[float]] = {"run": [], "walk": []}
    for i in range(n_sims):
        gait = "walk" if i % 4 == 3 else "run"
        me = tuple(float(v) for v in rng.uniform(-180, 180, 3))
        p = SimParams(
            seconds=seconds, mount_euler_deg=me, seed=i, gait=gait,
            cpd_left_deg=float(rng.uniform(2, 10)), cpd_right_deg=float(rng.uniform(2, 10)),
        )
        sim = simulate(p)
        b, tr = sim.batch, sim.truth
        count[gait] += 1
        cal = MountCalibration().update(b.t_s, b.acc_mps2, b.gyr_rads)
        if cal.state_ != "calibrated":
            rows.append((i, gait, "NOT CALIBRATED"))
            continue
        q = tr.mount_quat_wxyz
        rt = Rotation.from_quat([q[1], q[2], q[3], q[0]])
        qe = cal.mount_quat_wxyz_
        re_ = Rotation.from_quat([qe[1], qe[2], qe[3], qe[0]])
        ok = re_.inv().apply([1, 0, 0]) @ rt.inv().apply([1, 0, 0]) > 0 and re_.inv().apply([0, 1, 0]) @ rt.inv().apply([0, 1, 0]) > 0
        sign_ok[gait] += int(ok)
        expected = Rotation.from_euler("y", p.tilt_offset_deg, degrees=True) * rt
        mount_err = float(np.degrees((re_ * expected.inv()).magnitude()))
        cal_t[gait].append(cal.t_calibrated_s_ - tr.gait_start_s)
        mount_errs[gait].append(mount_err)
        po = PelvisOrientation(p.rate_hz, qe)
        m = PelvisMotion.concat([po.update(b.t_s[k : k + 10], b.acc_mps2[k : k + 10], b.gyr_rads[k : k + 10]) for k in range(0, b.t_s.size, 10)])
        steps = [s for s in tr.steps if s.ramp >= 1.0 and s.t_ic_s > cal.t_calibrated_s_]
        for s in steps:
            w = (b.t_s >= s.t_ic_s) & (b.t_s < s.t_ic_s + s.step_time_s)
            for k in ("tilt", "obliquity", "rotation"):
                errs[k].append(np.ptp(getattr(m, f"{k}_deg")[w]) - getattr(s, f"{k}_range_deg"))
            wc = (b.t_s >= s.t_ic_s) & (b.t_s <= s.t_fc_s)
            errs["cpd"].append(_cpd(m.obliquity_deg[wc], s.side) - s.cpd_deg)
        late = b.t_s > cal.t_calibrated_s_
        obl_rmse.append(float(np.sqrt(np.mean((m.obliquity_deg[late] - tr.obliquity_deg[late]) ** 2))))
        tilt_rmse.append(float(np.sqrt(np.mean((m.tilt_deg[late] - (tr.tilt_deg[late] - p.tilt_offset_deg)) ** 2))))
        rows.append((i, gait, f"sign {'ok' if ok else 'WRONG'}  mount err {mount_err:5.2f} deg  steps {len(steps)}"))
    print(f"\nsimulator: {n_sims} sessions of {seconds:.0f} s, random mountings, noise + bias + variability on")
    for r in rows:
        print(f"  #{r[0]:<3} {r[1]:<4} {r[2]}")
    for g in ("run", "walk"):
        if count[g]:
            ct = np.asarray(cal_t[g])
            me_ = np.asarray(mount_errs[g])
            print(f"forward/left sign right ({g}): {sign_ok[g]}/{count[g]}; calibrated {ct.mean():.1f} s (max {ct.max():.1f} s) after gait start; "
                  f"mount error mean {me_.mean():.2f} deg, max {me_.max():.2f} deg")
    for k, v in errs.items():
        a = np.asarray(v)
        name = "CPD error" if k == "cpd" else f"{k} range error per step"
        print(f"{name:<34} RMSE {np.sqrt(np.mean(a**2)):.3f} deg  max |e| {np.max(np.abs(a)):.3f} deg  (n={a.size})")
    print(f"obliquity series RMSE vs truth     mean {np.mean(obl_rmse):.3f} deg  max {np.max(obl_rmse):.3f} deg")
    print(f"tilt series RMSE (rel. standing)   mean {np.mean(tilt_rmse):.3f} deg  max {np.max(tilt_rmse):.3f} deg")


def sign_sweep(n_sims: int, seconds: float = 30.0) -> None:
    """Forward/left sign over many random mountings and gaits, with and without the gyroscope."""
    from scipy.spatial.transform import Rotation

    from pelvimon.dsp.calibration import MountCalibration
    from pelvimon.sensors.simulator import SimParams, simulate

    rng = np.random.default_rng(7)
    tally = {(g, m): [0, 0, 0] for g in ("run", "walk") for m in ("gyro", "acc-only")}  # right, wrong, undecided
    for i in range(n_sims):
        gait = "walk" if rng.random() < 0.3 else "run"
        p = SimParams(
            seconds=seconds, gait=gait, seed=1000 + i,
            mount_euler_deg=tuple(float(v) for v in rng.uniform(-180, 180, 3)),
            cadence_spm=float(rng.uniform(150, 190) if gait == "run" else rng.uniform(90, 125)),
            cpd_left_deg=float(rng.uniform(0, 10)), cpd_right_deg=float(rng.uniform(0, 10)),
            tilt_range_deg=float(rng.uniform(2, 10)), rotation_range_deg=float(rng.uniform(4, 20)),
        )
        sim = simulate(p)
        b, tr = sim.batch, sim.truth
        q = tr.mount_quat_wxyz
        rt = Rotation.from_quat([q[1], q[2], q[3], q[0]]).inv()
        for mode, gyr in (("gyro", b.gyr_rads), ("acc-only", None)):
            cal = MountCalibration().update(b.t_s, b.acc_mps2, gyr)
            if cal.state_ != "calibrated":
                tally[(gait, mode)][2] += 1
                continue
            qe = cal.mount_quat_wxyz_
            re_ = Rotation.from_quat([qe[1], qe[2], qe[3], qe[0]]).inv()
            ok = re_.apply([1, 0, 0]) @ rt.apply([1, 0, 0]) > 0 and re_.apply([0, 1, 0]) @ rt.apply([0, 1, 0]) > 0
            tally[(gait, mode)][0 if ok else 1] += 1
    print(f"\nsign sweep: {n_sims} simulated sessions of {seconds:.0f} s, random mounting, cadence, CPD, ranges")
    for (g, m), (ok, bad, und) in tally.items():
        print(f"  {g:<4} {m:<8} right {ok}, WRONG {bad}, undecided {und}")


def timing() -> None:
    rate, chunk, n = 200.0, 10, 200 * 600
    rng = np.random.default_rng(0)
    acc = rng.normal(0, 1, (n, 3)) + [0, 0, 9.81]
    gyr = rng.normal(0, 0.5, (n, 3))
    t = np.arange(n) / rate
    po = PelvisOrientation(rate, [1, 0, 0, 0])
    t0 = time.perf_counter()
    for k in range(0, n, chunk):
        po.update(t[k : k + chunk], acc[k : k + chunk], gyr[k : k + chunk])
    dt = time.perf_counter() - t0
    print(f"\nstreaming PelvisOrientation, {chunk}-sample chunks: {dt / (n / rate) * 3600:.2f} s per hour of 200 Hz data "
          f"= {100 * dt / (n / rate):.2f} % of a core live")
    from pelvimon.dsp.calibration import MountCalibration

    cal = MountCalibration()
    t0 = time.perf_counter()
    for k in range(0, n, chunk):
        cal.update(t[k : k + chunk], acc[k : k + chunk], gyr[k : k + chunk])
    dt = time.perf_counter() - t0
    print(f"streaming MountCalibration, {chunk}-sample chunks: {100 * dt / (n / rate):.2f} % of a core live")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset_dir", nargs="?", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--chunk", type=int, default=10, help="samples per streaming chunk (default 10)")
    ap.add_argument("--sims", type=int, default=24, help="simulated sessions with random mountings (default 24)")
    ap.add_argument("--skip-broad", action="store_true", help="only the simulator and timing parts")
    ap.add_argument("--sign-sims", type=int, default=0, help="also sweep forward/left signs over N random sessions")
    args = ap.parse_args(argv)
    if not args.skip_broad:
        broad(args)
    simulator_validation(args.sims)
    if args.sign_sims:
        sign_sweep(args.sign_sims)
    timing()
    return 0


def broad(args: argparse.Namespace) -> int:
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
