"""The speed figures of docs/simulator.md and docs/csv.md, as ratios measured in the same run.

Prints, for one hour at 200 Hz (720,000 samples) by default:

1. ``simulate`` (all sensor errors on) and ``SimParams.ideal`` wall and CPU time;
2. CSV writing (``format_imu_csv``, ``%.17g``) against ``numpy.savetxt`` with the same format;
3. CSV reading (``read_imu_csv``) against a bare ``pandas.read_csv`` of the same file, for the design's
   columns and for a file with an extra text column; the round trip is checked to be exact;
4. the truth JSON (``SimTruth.to_json`` + ``json.dumps``).

Usage: python benchmarks/bench_simulator_csv.py [--seconds 3600] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pelvimon.sensors.csv_source import format_imu_csv, read_imu_csv
from pelvimon.sensors.simulator import SimParams, simulate


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall and CPU time of ``repeat`` runs, s."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3600.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    p = SimParams(seconds=args.seconds)
    n = int(round(p.seconds * p.rate_hz))
    print(f"{args.seconds:g} s at {p.rate_hz:g} Hz = {n} samples, best of {args.repeat}")

    w, c = best(lambda: simulate(p), args.repeat)
    print(f"simulate (errors on)      wall {w:6.2f} s  cpu {c:6.2f} s")
    w, c = best(lambda: simulate(SimParams.ideal(seconds=args.seconds)), args.repeat)
    print(f"simulate (ideal)          wall {w:6.2f} s  cpu {c:6.2f} s")
    sim = simulate(p)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.csv"
        w_ours, _ = best(lambda: path.write_text(format_imu_csv(sim.batch)), args.repeat)
        data = np.column_stack([sim.batch.t_s, sim.batch.acc_mps2, sim.batch.gyr_rads])
        w_np, _ = best(lambda: np.savetxt(Path(tmp) / "np.csv", data, fmt="%.17g", delimiter=","), 1)
        print(
            f"write CSV                 {w_ours:6.2f} s   numpy.savetxt {w_np:6.2f} s   ratio {w_ours / w_np:4.2f}"
        )

        w_read, _ = best(lambda: read_imu_csv(path), args.repeat)
        w_pd, _ = best(lambda: pd.read_csv(path), args.repeat)
        print(
            f"read CSV                  {w_read:6.2f} s   pandas.read_csv {w_pd:6.2f} s   ratio {w_read / w_pd:4.2f}"
        )
        back = read_imu_csv(path)
        exact = all(
            np.array_equal(a, b)
            for a, b in (
                (back.t_s, sim.batch.t_s),
                (back.acc_mps2, sim.batch.acc_mps2),
                (back.gyr_rads, sim.batch.gyr_rads),
            )
        )
        print(f"round trip exact: {exact}")

        text = path.read_text().split("\n")
        extra = Path(tmp) / "extra.csv"
        extra.write_text(
            "\n".join(["label," + text[0]] + ["step," + line for line in text[1:] if line]) + "\n"
        )
        w_x, _ = best(lambda: read_imu_csv(extra), args.repeat)
        w_xpd, _ = best(lambda: pd.read_csv(extra), args.repeat)
        print(
            f"read CSV + text column    {w_x:6.2f} s   pandas.read_csv {w_xpd:6.2f} s   ratio {w_x / w_xpd:4.2f}"
        )

    w, c = best(lambda: json.dumps(sim.truth.to_json(), separators=(",", ":")), 1)
    print(f"truth JSON                wall {w:6.2f} s  cpu {c:6.2f} s")


if __name__ == "__main__":
    main()
