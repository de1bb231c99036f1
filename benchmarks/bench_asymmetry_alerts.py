"""The figures of docs/asymmetry_and_alerts.md: interval coverage, CPD alert detection, false alarms, cost.

Prints four tables:

1. coverage: share of 20-per-side windows whose 95 % interval excludes a true zero difference, iid Welch
   against pelvimon's AR(1) effective sample size, for AR(1) steps with lag-1 correlation rho;
2. detection: CPD alerts on simulator truth steps (CPD SD 1 deg, 120 s, 10 seeds) for left/right pairs;
3. false alarms per hour, symmetric runner (CPD 6 deg, per-side AR(1) noise, 20 sessions x 10 min);
4. cost per step of the streaming monitor, and its ratio to a plain numpy mean/SD of the same windows.

Usage: python benchmarks/bench_asymmetry_alerts.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from pelvimon.dsp.alerts import AlertMonitor
from pelvimon.dsp.asymmetry import AsymmetryMonitor, AsymmetryParams, compare_sides, welch_interval
from pelvimon.dsp.records import Step
from pelvimon.sensors.simulator import SimParams, simulate


def ar1(rng: np.random.Generator, n: int, rho: float, burn: int = 50) -> np.ndarray:
    e = rng.standard_normal(n + burn)
    x = np.zeros(n + burn)
    for i in range(1, n + burn):
        x[i] = rho * x[i - 1] + math.sqrt(1 - rho**2) * e[i]
    return x[burn:]


def coverage(n_windows: int) -> None:
    print("coverage: windows whose 95 % CI excludes the true zero (20 steps per side)")
    print(f"{'rho':>5} {'iid':>8} {'ar1':>8}")
    rng = np.random.default_rng(0)
    for rho in (0.0, 0.3, 0.5, 0.7):
        miss = {"iid": 0, "ar1": 0}
        for _ in range(n_windows):
            a, b = ar1(rng, 20, rho), ar1(rng, 20, rho)
            for mode in miss:
                left, right = compare_sides(a, b, autocorrelation=mode)  # type: ignore[arg-type]
                _, lo, hi = welch_interval(left, right)
                miss[mode] += lo > 0 or hi < 0
        print(f"{rho:5.1f} {100 * miss['iid'] / n_windows:7.1f}% {100 * miss['ar1'] / n_windows:7.1f}%")


def truth_steps(p: SimParams) -> list[Step]:
    out = []
    for s in simulate(p).truth.steps:
        if s.ramp < 1:
            continue
        out.append(Step(s.side, s.t_ic_s, s.t_fc_s, s.step_time_s, s.contact_time_s, s.flight_time_s,
                        s.cadence_spm, s.cpd_deg, s.obliquity_range_deg, s.tilt_range_deg, s.rotation_range_deg,
                        s.vertical_oscillation_cm, s.impact_g))  # fmt: skip
    return out


def run_alerts(steps: list[Step], ap: AsymmetryParams | None = None) -> list:
    mon, al = AsymmetryMonitor(ap), AlertMonitor()
    events = []
    for s in steps:
        events += al.update(mon.update([s]), s.t_ic_s + s.step_time_s)
    return events


def detection(seeds: int) -> None:
    print(f"\ndetection of CPD alerts (simulator truth, CPD SD 1 deg, 120 s, {seeds} seeds)")
    print(f"{'L vs R (deg)':>14} {'detected':>9} {'median s to start':>18}")
    for left, right in ((8.0, 4.0), (7.0, 4.0), (6.5, 4.0), (6.0, 4.0), (5.5, 4.0)):
        lat = []
        for seed in range(seeds):
            steps = truth_steps(SimParams(seconds=120, cpd_left_deg=left, cpd_right_deg=right, seed=seed,
                                          cpd_sd_deg=1.0))  # fmt: skip
            ev = [e for e in run_alerts(steps) if e.kind == "started" and e.alert.metric == "cpd_deg"]
            if ev:
                lat.append(ev[0].alert.t_start_s + 10.0 - steps[0].t_ic_s)
        med = f"{float(np.median(lat)):.1f}" if lat else "-"
        print(f"{left:6.1f} vs {right:3.1f} {len(lat):>5}/{seeds} {med:>18}")


def cpd_steps(n: int, rho: float, sd: float, seed: int) -> list[Step]:
    rng = np.random.default_rng(seed)
    noise = [ar1(rng, (n + 1) // 2, rho), ar1(rng, (n + 1) // 2, rho)]
    return [
        Step(
            "LR"[i % 2],
            0.35 * i,
            0.35 * i + 0.25,
            0.35,
            0.25,
            0.1,
            171.4,
            6.0 + sd * noise[i % 2][i // 2],
            8.0,
            5.0,
            12.0,
            7.0,
            2.0,
        )  # fmt: skip
        for i in range(n)
    ]


def false_alarms(sessions: int) -> None:
    hours = sessions * 10 / 60
    print(f"\nfalse CPD alarms per hour, symmetric runner ({sessions} sessions x 10 min)")
    print(f"{'SD (deg)':>9} " + " ".join(f"{'rho=' + str(r):>9}" for r in (0.0, 0.4, 0.6)))
    ap = AsymmetryParams(metrics=("cpd_deg",))
    for sd in (1.0, 1.5, 2.0):
        row = []
        for rho in (0.0, 0.4, 0.6):
            n = 0
            for seed in range(sessions):
                n += sum(e.kind == "started" for e in run_alerts(cpd_steps(1700, rho, sd, seed), ap))
            row.append(n / hours)
        print(f"{sd:9.1f} " + " ".join(f"{v:9.2f}" for v in row))


def cost() -> None:
    steps = cpd_steps(4000, 0.3, 1.0, 1)
    # give every metric a value so all nine are computed
    mon = AsymmetryMonitor()
    t0 = time.perf_counter()
    for s in steps:
        mon.update([s])
    per_step = (time.perf_counter() - t0) / len(steps)
    # baseline: numpy mean and SD of the same 20-per-side windows, nine metrics
    vals = np.random.default_rng(0).standard_normal((len(steps), 9))
    t0 = time.perf_counter()
    for i in range(40, len(steps)):
        w = vals[i - 40 : i]
        w[::2].mean(axis=0), w[1::2].mean(axis=0), w[::2].std(axis=0), w[1::2].std(axis=0)
    base = (time.perf_counter() - t0) / (len(steps) - 40)
    print(f"\ncost per step (nine metrics): {1e6 * per_step:.0f} us; plain numpy window mean/SD: {1e6 * base:.0f} us "
          f"(ratio {per_step / base:.1f})")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (rough figures)")
    args = ap.parse_args()
    coverage(300 if args.quick else 1500)
    detection(3 if args.quick else 10)
    false_alarms(4 if args.quick else 20)
    cost()


if __name__ == "__main__":
    main()
