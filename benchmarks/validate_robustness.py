"""Robustness of the gait analysis on the simulator, beyond the cases of validate.py: sample rates, sensor
errors and variability, limping (step-time asymmetry), lost notifications and sessions of several bouts.

    python benchmarks/validate_robustness.py            # everything (about 3 minutes)
    python benchmarks/validate_robustness.py --part loss

Every figure of docs/dsp_gait.md about these comes from here. Scored as in validate.py: full-amplitude
steps, ICs matched within 100 ms, angles after the mount calibration. Random mountings per session.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate import rmse, score_sim  # noqa: E402

from pelvimon.dsp._gait_eval import lossy_batches, match_times, score_bout  # noqa: E402
from pelvimon.dsp.pipeline import GaitPipeline, MountMoved, PipelineParams, analyze_offline  # noqa: E402
from pelvimon.sensors.simulator import SimParams, simulate, simulate_session  # noqa: E402


def _mount(seed: int) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.random.default_rng(seed).uniform(-180.0, 180.0, 3))  # type: ignore[return-value]


def _row(label: str, s) -> str:  # noqa: ANN001
    ic = s.ic_err_s * 1000
    lat = s.side_ok.mean() if s.side_ok.size else float("nan")
    return (f"{label:58s} recall {s.tp / s.n_ref:.3f}  precision {s.tp / max(s.n_det, 1):.3f}  "
            f"IC median {np.median(np.abs(ic)):5.1f} ms (bias {np.median(ic):+5.1f})  laterality {lat:.3f}  "
            f"CPD RMSE {rmse(s.cpd_err):.3f} deg")


def rates() -> None:
    print("sample rate and cadence (running 170 steps/min unless said, 60 s)")
    for rate in (52.0, 100.0, 104.0, 200.0, 208.0, 416.0, 833.0):
        for seed in (1, 2):
            s = score_sim(60.0, gait="run", rate_hz=rate, cadence_spm=170.0, seed=seed, mount_euler_deg=_mount(seed))
            print(_row(f"  run {rate:5.0f} Hz seed {seed}", s))
    for rate, cad in ((200.0, 140.0), (200.0, 220.0), (100.0, 220.0)):
        s = score_sim(60.0, gait="run", rate_hz=rate, cadence_spm=cad, seed=1, mount_euler_deg=_mount(1))
        print(_row(f"  run {rate:5.0f} Hz {cad:3.0f} steps/min", s))
    for rate, cad in ((52.0, 110.0), (100.0, 110.0), (100.0, 70.0), (200.0, 60.0), (200.0, 140.0), (833.0, 110.0)):
        s = score_sim(60.0, gait="walk", rate_hz=rate, cadence_spm=cad, seed=1, mount_euler_deg=_mount(1))
        print(_row(f"  walk {rate:5.0f} Hz {cad:3.0f} steps/min", s))


def options() -> None:
    print("sensor errors, variability and start (60 s, seeds 11 and 12)")
    cases = [
        dict(gait="run", acc_noise_mps2=0.1, gyr_noise_rads=0.02),
        dict(gait="walk", acc_noise_mps2=0.1, gyr_noise_rads=0.02),
        dict(gait="run", gyr_bias_dps=3.0, acc_bias_mps2=0.2),
        dict(gait="walk", gyr_bias_dps=3.0, acc_bias_mps2=0.2),
        dict(gait="run", acc_scale_error=0.03, gyr_scale_error=0.03),
        dict(gait="run", jitter_s=2e-3),
        dict(gait="run", step_time_cv=0.04, contact_time_cv=0.05, cpd_sd_deg=1.5),
        dict(gait="walk", step_time_cv=0.04, cpd_sd_deg=1.5),
        dict(gait="run", stand_s=0.0),
        dict(gait="walk", stand_s=0.0),
        dict(gait="run", acc_range_g=8.0),
        dict(gait="run", cpd_left_deg=12.0, cpd_right_deg=2.0),
    ]
    for c in cases:
        for seed in (11, 12):
            s = score_sim(60.0, seed=seed, mount_euler_deg=_mount(seed), **c)
            label = " ".join(f"{k}={v}" for k, v in c.items())
            print(_row(f"  {label} seed {seed}", s))


def limp() -> None:
    print("step-time asymmetry (limp), 60 s")
    for gait, pct in (("walk", 3.0), ("walk", 5.0), ("walk", -5.0), ("walk", 8.0), ("walk", 15.0), ("walk", -15.0),
                      ("walk", 25.0), ("run", 8.0), ("run", 15.0)):
        for seed in (11, 12):
            s = score_sim(60.0, gait=gait, step_time_asymmetry_pct=pct, seed=seed, mount_euler_deg=_mount(seed))
            print(_row(f"  {gait} {pct:+.0f} % seed {seed}", s))


def loss() -> None:
    print("lost 8-sample notifications, 120 s, mount (30, -50, 120) deg: bridged (default) or restarted")
    for gait in ("run", "walk"):
        sim = simulate(SimParams(seconds=120, seed=3, gait=gait, mount_euler_deg=(30, -50, 120)))
        full = [s for s in sim.truth.steps if s.ramp >= 1.0]
        for bridge in (0.25, 0.0):
            for p in (0.0, 0.01, 0.05):
                pipe = GaitPipeline(200.0, PipelineParams(bridge_gap_s=bridge))
                for part in lossy_batches(sim.batch, p, seed=0):
                    pipe.update(part)
                pipe.finish()
                good = [s for s in pipe.steps_ if not s.gap and np.isfinite(s.cpd_deg)]
                m = match_times(np.array([s.t_ic_s for s in good]), np.array([s.t_ic_s for s in full]), 0.1)
                cpd = np.array([good[i].cpd_deg - full[j].cpd_deg for i, j in m.pairs])
                side = np.mean([good[i].side == full[j].side for i, j in m.pairs]) if m.pairs.size else float("nan")
                mode = "bridged" if bridge > 0 else "restart"
                print(f"  {gait} {mode:8s} loss {p:4.2f}: steps {len(pipe.steps_)}, flagged gap "
                      f"{sum(s.gap for s in pipe.steps_)}, with CPD {len(good)} of {len(full)} true; "
                      f"CPD RMSE {rmse(cpd) if cpd.size else float('nan'):.3f} deg, sides right {side:.3f}")


def bouts() -> None:
    print("sessions of bouts (standing 6 s between them), random mountings: per bout")
    plans = [("walk", "run", "walk"), ("run", "walk", "run"), ("walk", "run", "run")]
    for seed in (1, 2, 3, 4):
        gaits = plans[(seed - 1) % len(plans)]
        mount = _mount(100 + seed)
        ps = [SimParams(seconds=60, gait=g, seed=10 * seed + i, mount_euler_deg=mount, cpd_left_deg=6 + 2 * i,
                        stand_s=5.0 if i == 0 else 3.0, end_stand_s=0.0 if i == len(gaits) - 1 else 3.0)
              for i, g in enumerate(gaits)]
        sim = simulate_session(ps)
        res = analyze_offline(sim.batch, rate_hz=200.0)
        moved = sum(isinstance(e, MountMoved) for e in res.events)
        print(f"  session {seed}: {' -> '.join(gaits)}, mount moved reported {moved} times")
        t0 = 0.0
        for p in ps:
            b = score_bout(res.steps, sim.truth.steps, t0, t0 + p.seconds)
            t0 += p.seconds
            print(f"    {p.gait:4s} recall {b.match.recall:.3f}  precision {b.match.precision:.3f}  IC median "
                  f"{np.median(np.abs(b.match.err_s)) * 1000:4.1f} ms  laterality {b.laterality:.3f}  flight as "
                  f"true {b.running_agree:.3f}  CPD RMSE {b.cpd_rmse_deg:.3f} deg ({b.n_cpd} steps)")


PARTS = {"rates": rates, "options": options, "limp": limp, "loss": loss, "bouts": bouts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=sorted(PARTS), action="append", help="only these parts (repeatable)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    for name in args.part or list(PARTS):
        PARTS[name]()
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
