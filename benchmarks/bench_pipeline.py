"""Speed and memory of the gait pipeline, against baselines measured in the same run.

    python benchmarks/bench_pipeline.py              # one hour of 200 Hz running (720,000 samples)
    python benchmarks/bench_pipeline.py --minutes 10 # shorter

Prints:

* ``analyze_offline`` on the whole recording vs ``vqf.VQF.updateBatch`` over the same samples (the pipeline
  runs that filter itself, so the ratio is at least about 1);
* the whole ``pelvimon analyze``-like path (``pandas.read_csv`` of a CSV of the recording + analysis) vs
  ``pandas.read_csv`` + ``VQF.updateBatch``;
* live processing in 10-sample chunks (one BLE notification each): CPU time per second of data, i.e. the
  share of one core at 200 Hz;
* memory: tracemalloc peak while streaming the recording twice over (two hours) after draining steps,
  and the sizes of the ring buffers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc

import numpy as np
import pandas as pd
import vqf

from pelvimon.dsp.pipeline import GaitPipeline, analyze_offline
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.simulator import SimParams, simulate

FS = 200.0


def _best(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the simulated run (default 60)")
    args = ap.parse_args(argv)
    seconds = args.minutes * 60.0
    sim = simulate(SimParams(seconds=seconds, rate_hz=FS, gait="run", seed=3))
    b = sim.batch
    n = len(b)
    acc = np.ascontiguousarray(b.acc_mps2)
    gyr = np.ascontiguousarray(b.gyr_rads)
    print(f"recording: {n} samples ({seconds / 3600:.2f} h at {FS:.0f} Hz), {len(sim.truth.steps)} steps")

    t_vqf = _best(lambda: vqf.VQF(1.0 / FS).updateBatch(gyr, acc))
    res = {}

    def run_offline() -> None:
        res["r"] = analyze_offline(b, rate_hz=FS)

    t_off = _best(run_offline)
    print(f"VQF.updateBatch                 {t_vqf:8.3f} s")
    print(f"analyze_offline                 {t_off:8.3f} s   ratio to VQF {t_off / t_vqf:5.2f}  ({len(res['r'].steps)} steps)")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rec.csv")
        cols = ["acc_x_mps2", "acc_y_mps2", "acc_z_mps2", "gyr_x_rads", "gyr_y_rads", "gyr_z_rads"]
        df = pd.DataFrame(np.column_stack([acc, gyr]), columns=cols)
        df.insert(0, "t_s", b.t_s)
        df.to_csv(path, index=False)

        def load() -> pd.DataFrame:
            return pd.read_csv(path)

        def base() -> None:
            d = load()
            vqf.VQF(1.0 / FS).updateBatch(
                np.ascontiguousarray(d[cols[3:]].to_numpy()), np.ascontiguousarray(d[cols[:3]].to_numpy())
            )

        def full() -> None:
            d = load()
            batch = ImuBatch(t_s=d["t_s"].to_numpy(), acc_mps2=d[cols[:3]].to_numpy(),
                             gyr_rads=d[cols[3:]].to_numpy(), time_base="session")
            analyze_offline(batch, rate_hz=FS)

        t_base = _best(base, 2)
        t_full = _best(full, 2)
    print(f"read_csv + VQF                  {t_base:8.3f} s")
    print(f"read_csv + analyze_offline      {t_full:8.3f} s   ratio {t_full / t_base:5.2f}")

    # live: notification-sized chunks, CPU time
    n_live = min(n, int(600 * FS))
    pipe = GaitPipeline(FS)
    c0 = time.process_time()
    for a in range(0, n_live, 10):
        pipe.update(b.slice(a, min(n_live, a + 10)))
        pipe.drain_steps()
    cpu = time.process_time() - c0
    print(f"live, 10-sample chunks           {cpu / (n_live / FS) * 100:7.2f} % of one core "
          f"({cpu:.2f} s CPU for {n_live / FS:.0f} s of data)")

    # memory over two hours of streaming (the recording twice, steps drained as a GUI would)
    pipe = GaitPipeline(FS)
    tracemalloc.start()
    peaks = []
    for rep in range(2):
        for a in range(0, n, 2000):
            pipe.update(b.slice(a, min(n, a + 2000)))
            pipe.drain_steps()
        peaks.append(tracemalloc.get_traced_memory()[1])
        if rep == 0:
            tracemalloc.reset_peak()
    cur = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rings = pipe._ring._buf.nbytes + pipe._detector._ring._buf.nbytes
    print(f"memory, streamed {2 * seconds / 3600:.2f} h: traced peak first pass {peaks[0] / 1e6:.2f} MB, "
          f"second pass {peaks[1] / 1e6:.2f} MB, now {cur / 1e6:.2f} MB; ring buffers {rings / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
