"""Inclination accuracy of the pelvis orientation stage on the BROAD dataset (optical reference).

For each trial the IMU samples go through :class:`pelvimon.dsp.orientation.PelvisOrientation` (streaming,
causal, 6D, mount = identity, notification-sized chunks) and through ``offline_pelvis_orientation``. The
error is the BROAD paper's inclination error: the error quaternion in the world frame,
``q_est ⊗ q_ref⁻¹``, without its rotation about the vertical, ``2 arccos(sqrt(w² + z²))`` (equal to the
angle between the estimated and the reference vertical in the IMU frame; heading-free, so no heading
alignment is needed). RMSE over the trial's movement samples, samples with an occluded reference left out,
as in the paper's example code. Each trial is scored twice: against the reference as published, and
against the reference shifted in time by the clock lag that best fits the reference's angular rate (from
successive reference orientations) to the gyroscope. The lag uses the reference and the gyroscope only,
never the estimate, and nothing in the orientation stage is tuned to these trials.

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

from pelvimon.dsp._orient_quat import quat_multiply as _qmul
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


def vertical_in_sensor_from_quat(q_wxyz: np.ndarray) -> np.ndarray:
    """World up in the sensor frame for sensor->world quaternions ((N, 4) -> (N, 3)): third row of R."""
    w, x, y, z = q_wxyz.T
    return np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1)


def quat_from_angles(motion: PelvisMotion) -> np.ndarray:
    """World <- body quaternions ``Rx(obliquity) Ry(tilt)`` of a motion ((N, 4), scalar first): the rotation
    is taken as 0.

    A rotation about the vertical does not change the inclination error (:func:`inclination_error_deg`),
    and the rotation is NaN where the pelvis faces far from the tracked running direction (a turn; these
    trials turn the sensor about every axis): it would leave those samples out of the error."""
    n = len(motion)
    half = [np.radians(np.asarray(a, dtype=np.float64)) / 2 for a in (motion.obliquity_deg, motion.tilt_deg)]
    qx, qy = np.zeros((n, 4)), np.zeros((n, 4))
    qx[:, 0], qx[:, 1] = np.cos(half[0]), np.sin(half[0])
    qy[:, 0], qy[:, 2] = np.cos(half[1]), np.sin(half[1])
    return _qmul(qx, qy)


def inclination_error_deg(q_est: np.ndarray, q_ref: np.ndarray) -> np.ndarray:
    """BROAD inclination error per sample, deg ((N, 4) and (N, 4) sensor -> world, scalar first -> (N,)).

    As defined in the BROAD paper: the error quaternion expressed in the world frame,
    ``q_e = q_est ⊗ q_ref⁻¹``, is split into a rotation about the vertical and the rest; the inclination
    error is the angle of the rest, ``2 arccos(sqrt(w_e² + z_e²))``. It equals the angle between the
    vertical seen in the sensor frame by the estimate and by the reference, and does not depend on either
    heading. NaN where the reference is NaN (occluded markers)."""
    qe = q_est / np.linalg.norm(q_est, axis=1, keepdims=True)
    qr = q_ref / np.linalg.norm(q_ref, axis=1, keepdims=True)
    e = _qmul(qe, qr * np.array([1.0, -1.0, -1.0, -1.0]))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return np.degrees(2 * np.arccos(np.clip(np.sqrt(e[:, 0] ** 2 + e[:, 3] ** 2), 0.0, 1.0)))


def inclination_rmse_deg(motion: PelvisMotion, q_ref: np.ndarray, movement: np.ndarray) -> float:
    """BROAD inclination RMSE over the movement samples, deg (samples with a NaN reference left out).

    Every movement sample is scored, as in the paper; an estimate that is not yet ``valid`` there would
    count with whatever it holds (the trials start at rest, so the stage has settled before the movement)."""
    err = inclination_error_deg(quat_from_angles(motion), q_ref)[movement]
    if not np.all(motion.valid[movement]):
        raise ValueError("the orientation stage is not valid on some movement samples")
    return float(np.sqrt(np.nanmean(err**2)))


def reference_rate_rads(q_ref: np.ndarray, rate_hz: float) -> np.ndarray:
    """Angular rate in the sensor frame from successive reference orientations, rad/s ((N, 4) -> (N-1, 3)).

    Row k is the rate over samples k..k+1 and belongs to time k + 0.5 (in samples); NaN where either
    sample is NaN."""
    d = _qmul(q_ref[:-1] * np.array([1.0, -1.0, -1.0, -1.0]), q_ref[1:])
    d *= np.where(d[:, :1] < 0, -1.0, 1.0)
    s = np.linalg.norm(d[:, 1:], axis=1, keepdims=True)
    ang = 2 * np.arctan2(s, d[:, :1])
    with np.errstate(invalid="ignore", divide="ignore"):
        axis = np.where(s > 0, d[:, 1:] / s, 0.0)
    return axis * ang * rate_hz


def clock_lag_samples(
    q_ref: np.ndarray, gyr: np.ndarray, movement: np.ndarray, rate_hz: float,
    max_lag: float = 5.0, step: float = 0.05,
) -> tuple[float, float, float]:
    """Clock offset of the optical reference relative to the IMU, in samples (fractional).

    The lag ``L`` minimises, over the movement samples, the mean squared difference between the gyroscope
    at sample ``k`` and the reference's angular rate at time ``k + L`` (linearly interpolated; each finite
    difference is placed at the middle of its two samples). Only the reference and the gyroscope are used,
    never an orientation estimate. Returns ``(lag, rms_rate_error_at_lag, rms_rate_error_at_0)`` (rad/s).
    """
    w = reference_rate_rads(q_ref, rate_hz)
    t_w = np.arange(w.shape[0]) + 0.5
    ok_w = np.all(np.isfinite(w), axis=1)
    t_w, w = t_w[ok_w], w[ok_w]
    k = np.flatnonzero(movement)
    lags = np.arange(-max_lag, max_lag + step / 2, step)
    cost = np.empty(lags.size)
    for i, lag in enumerate(lags):
        tk = k + lag
        # a sample counts only if both neighbouring finite differences exist (no bridging over occlusions)
        j = np.searchsorted(t_w, tk)
        inside = (j > 0) & (j < t_w.size)
        jj = np.clip(j, 1, t_w.size - 1)
        inside &= (t_w[jj] - t_w[jj - 1]) <= 1.0 + 1e-9
        wi = np.stack([np.interp(tk[inside], t_w, w[:, a]) for a in range(3)], axis=1)
        cost[i] = np.mean(np.sum((wi - gyr[k[inside]]) ** 2, axis=1))
    best = int(np.argmin(cost))
    zero = int(np.argmin(np.abs(lags)))
    return round(float(lags[best]), 6), float(np.sqrt(cost[best])), float(np.sqrt(cost[zero]))


def shift_reference(q_ref: np.ndarray, lag: float) -> np.ndarray:
    """The reference at times ``k + lag`` (samples), by slerp between neighbouring samples ((N, 4) -> (N, 4)).

    Samples whose neighbours fall outside the recording or are NaN become NaN."""
    n = q_ref.shape[0]
    pos = np.arange(n) + lag
    i0 = np.floor(pos).astype(np.int64)
    f = (pos - i0)[:, None]
    ok = (i0 >= 0) & (i0 + 1 < n)
    out = np.full((n, 4), np.nan)
    a = q_ref[i0[ok]]
    b = q_ref[i0[ok] + 1]
    dot = np.sum(a * b, axis=1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.clip(np.abs(dot), -1.0, 1.0)
    th = np.arccos(dot)
    sth = np.sin(th)
    small = sth < 1e-9
    with np.errstate(invalid="ignore", divide="ignore"):
        wa = np.where(small, 1 - f[ok], np.sin((1 - f[ok]) * th) / sth)
        wb = np.where(small, f[ok], np.sin(f[ok] * th) / sth)
    q = wa * a + wb * b
    out[ok] = q / np.linalg.norm(q, axis=1, keepdims=True)
    return out


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
    ap.add_argument("--sims", type=int, default=24, help="simulated sessions with random mountings (default 24; 0: none)")
    ap.add_argument("--skip-broad", action="store_true", help="only the simulator and timing parts")
    ap.add_argument("--sign-sims", type=int, default=0, help="also sweep forward/left signs over N random sessions")
    args = ap.parse_args(argv)
    if args.sims < 0 or args.chunk < 1:
        ap.error("--sims must be >= 0 and --chunk >= 1")
    if not args.skip_broad:
        broad(args)
    if args.sims:
        simulator_validation(args.sims)
    if args.sign_sims:
        sign_sweep(args.sign_sims)
    timing()
    return 0


def broad_trial(path: Path, chunk: int = 10, max_s: float | None = None) -> dict[str, float]:
    """Score one BROAD trial, streaming and offline, against the reference as published and clock-aligned.

    The clock lag comes from the reference and the gyroscope only (:func:`clock_lag_samples`); nothing in
    the orientation stage depends on it."""
    tr = load_trial(path, max_s)
    rate = float(tr["rate_hz"])  # type: ignore[arg-type]
    n = tr["acc"].shape[0]  # type: ignore[union-attr]
    q_ref, mov = tr["q_ref"], tr["movement"]
    lag, rate_err, rate_err0 = clock_lag_samples(q_ref, tr["gyr"], mov, rate)  # type: ignore[arg-type]
    q_al = shift_reference(q_ref, lag)  # type: ignore[arg-type]
    m = run_streaming(tr, chunk)
    mo = offline_pelvis_orientation(np.arange(n) / rate, tr["acc"], tr["gyr"], [1, 0, 0, 0], rate)
    return {
        "duration_s": n / rate,
        "movement_s": float(np.sum(mov)) / rate,  # type: ignore[arg-type]
        "lag_samples": lag,
        "lag_ms": 1e3 * lag / rate,
        "rate_err0_rads": rate_err0,
        "rate_err_rads": rate_err,
        "stream_raw_deg": inclination_rmse_deg(m, q_ref, mov),  # type: ignore[arg-type]
        "stream_aligned_deg": inclination_rmse_deg(m, q_al, mov),  # type: ignore[arg-type]
        "offline_raw_deg": inclination_rmse_deg(mo, q_ref, mov),  # type: ignore[arg-type]
        "offline_aligned_deg": inclination_rmse_deg(mo, q_al, mov),  # type: ignore[arg-type]
    }


def broad(args: argparse.Namespace) -> int:
    files = sorted(args.dataset_dir.glob("*.hdf5"))
    if not files:
        print(f"no .hdf5 files in {args.dataset_dir}", file=sys.stderr)
        return 1
    print("BROAD inclination RMSE (paper metric, movement samples), deg; raw = reference as published,")
    print("aligned = reference shifted by the lag that best fits its angular rate to the gyroscope")
    print(f"{'trial':<46} {'dur_s':>6} {'lag_smp':>8} {'lag_ms':>7} {'rate_rms 0->lag':>16} "
          f"{'stream raw':>10} {'aligned':>8} {'offline raw':>11} {'aligned':>8}")
    worst_raw = worst_al = 0.0
    for path in files:
        r = broad_trial(path, args.chunk)
        worst_raw, worst_al = max(worst_raw, r["stream_raw_deg"]), max(worst_al, r["stream_aligned_deg"])
        print(f"{path.stem:<46} {r['duration_s']:6.1f} {r['lag_samples']:+8.2f} {r['lag_ms']:+7.2f} "
              f"{r['rate_err0_rads']:7.3f}->{r['rate_err_rads']:.3f} "
              f"{r['stream_raw_deg']:10.3f} {r['stream_aligned_deg']:8.3f} {r['offline_raw_deg']:11.3f} {r['offline_aligned_deg']:8.3f}")
    print(f"worst streaming inclination RMSE: raw {worst_raw:.3f} deg, aligned {worst_al:.3f} deg (target <= 1 deg)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
