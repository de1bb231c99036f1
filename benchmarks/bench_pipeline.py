"""Speed and memory of ``pelvimon analyze`` and the live pipeline, against baselines measured in the same run.

    python benchmarks/bench_pipeline.py                      # one hour of simulated running, 200 Hz
    python benchmarks/bench_pipeline.py --csv /tmp/hour.csv  # reuse (or create) that CSV
    python benchmarks/bench_pipeline.py --minutes 10 --repeat 1

The recording is ``pelvimon simulate --seconds 3600`` (720,000 samples, about 10,000 steps). Prints, as the
median of ``--repeat`` runs (wall clock, and CPU time of this process where it is one, with that of the
analysis' helper process, which runs the calibration and orientation stages beside the others on a
machine with two cores; :mod:`pelvimon.motion_helper`):

* the baseline: ``pandas.read_csv`` of the CSV + ``vqf.VQF(1/200).updateBatch`` over its samples;
* ``pelvimon analyze CSV`` end to end in this process (``pelvimon.cli.main``, the code the command runs,
  its printed report thrown away) and its parts (load, pipeline, asymmetry and alerts), and the pipeline's
  wall time with its helper and in one process;
* the same as subprocesses: ``pelvimon analyze CSV`` against a ``python -c`` that imports pandas and vqf,
  reads the CSV and runs VQF (so both pay interpreter start-up and imports; each is run once untimed
  first, and both cache their bytecode as installed programs do, whatever ``PYTHONDONTWRITEBYTECODE`` says);
* the ratios (target: analyze <= 2 x baseline), and the CPU time of each pipeline stage in one run;
* live processing in 10-sample chunks (one BLE notification each): CPU time per second of data, i.e. the
  share of one core at 200 Hz (target < 3 %);
* memory: tracemalloc peak while streaming the recording twice over (two hours) with the steps drained as
  the live engine does, per hour (bounded: the second hour must not need more than the first).

The machine is shared: the load average is printed first; run it when that is low.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import vqf

FS = 200.0
BIN = Path(sys.executable).parent


def _cpu() -> float:
    """CPU time of this process and of its children that ended (the analysis' helper process), s."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall s, CPU s of this process and its helper) of one call."""
    w0, c0 = time.perf_counter(), _cpu()
    fn()
    return time.perf_counter() - w0, _cpu() - c0


def _median(rows: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(statistics.median(col) for col in zip(*rows, strict=True))


def _spread(base: list[tuple[float, ...]], ana: list[tuple[float, ...]]) -> str:
    """The wall-clock ratio of each run (its baseline was timed just before it), lowest to highest: on a
    shared machine the host's speed drifts between runs, which the ratio of the medians hides."""
    ratios = sorted(a[0] / b[0] for b, a in zip(base, ana, strict=True))
    return "ratio of each run: " + ", ".join(f"{r:.2f}" for r in ratios)


def _baseline(path: str) -> None:
    d = pd.read_csv(path)
    a = d.to_numpy()
    vqf.VQF(1.0 / FS).updateBatch(np.ascontiguousarray(a[:, 4:7]), np.ascontiguousarray(a[:, 1:4]))


def _baseline_vqf(batch: object) -> None:
    vqf.VQF(1.0 / FS).updateBatch(np.ascontiguousarray(batch.gyr_rads), np.ascontiguousarray(batch.acc_mps2))  # type: ignore[attr-defined]


_BASELINE_SCRIPT = (
    "import sys, numpy as np, pandas as pd, vqf\n"
    "a = pd.read_csv(sys.argv[1]).to_numpy()\n"
    "vqf.VQF(1 / 200).updateBatch(np.ascontiguousarray(a[:, 4:7]), np.ascontiguousarray(a[:, 1:4]))\n"
)


def _analyze_cli_in_process(path: str) -> None:
    from pelvimon.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["analyze", path])
    if rc != 0:
        raise SystemExit(f"pelvimon analyze {path} failed with exit code {rc}")


def _parts(path: str) -> tuple[float, float, float, float, float, int]:
    """Of the stages of ``analyze_file``, CPU s (with the helper's): load, pipeline, asymmetry + alerts;
    wall s of the pipeline with its helper and in one process; and the step count."""
    from pelvimon import motion_helper
    from pelvimon.analysis import analyze_steps, load_batches, run_pipeline

    c0 = _cpu()
    batches = load_batches(path)
    w1, c1 = time.perf_counter(), _cpu()
    run = run_pipeline(batches, helper=motion_helper.usable())
    helped, c2 = time.perf_counter() - w1, _cpu()
    analyze_steps(run.steps)
    c3 = _cpu()
    alone = _timed(lambda: run_pipeline(batches, helper=False))[0]
    return c1 - c0, c2 - c1, c3 - c2, helped, alone, len(run.steps)


def _stages(batches: list) -> dict[str, float]:
    """CPU time per pipeline stage in one ``run_pipeline`` over the loaded ``batches`` (the stage methods
    wrapped with timers)."""
    from pelvimon.analysis import run_pipeline
    from pelvimon.dsp import calibration, events, orientation, pipeline

    spent: dict[str, float] = {}
    wrapped = [
        (calibration.MountCalibration, "update", "calibration (its VQF until calibrated, then the mount re-check)"),
        (orientation.PelvisOrientation, "update", "orientation (incl. VQF)"),
        (events.GaitEventDetector, "update", "events"),
        (pipeline.GaitPipeline, "_make_steps", "laterality + step metrics"),
    ]
    saved = []
    for cls, name, label in wrapped:
        fn = getattr(cls, name)
        saved.append((cls, name, fn))

        def timed(*a: object, _fn: Callable[..., object] = fn, _label: str = label, **k: object) -> object:
            c0 = time.process_time()
            try:
                return _fn(*a, **k)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.process_time() - c0

        setattr(cls, name, timed)
    try:
        c0 = time.process_time()
        run_pipeline(batches, helper=False)  # (all stages in this process, where the timers are)
        spent["pipeline total"] = time.process_time() - c0
    finally:
        for cls, name, fn in saved:
            setattr(cls, name, fn)
    return spent


_SUB_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""The subprocesses' environment: Python caches compiled modules as it normally does (an installed program's
bytecode is cached after its first run, as the baseline's libraries' is at their install)."""


def _subprocess(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=_SUB_ENV)
    return time.perf_counter() - t0


def _live(batch: object, seconds: float) -> float:
    """CPU share of one core (%) for ``seconds`` of data fed in 10-sample chunks, steps drained."""
    from pelvimon.dsp.pipeline import GaitPipeline

    n = min(len(batch), int(seconds * FS))  # type: ignore[arg-type]
    pipe = GaitPipeline(FS)
    c0 = time.process_time()
    for a in range(0, n, 10):
        pipe.update(batch.slice(a, min(n, a + 10)))  # type: ignore[attr-defined]
        pipe.drain_steps()
    return (time.process_time() - c0) / (n / FS) * 100.0


def _latency(gait: str, seconds: float = 40.0, cadence: float | None = None) -> tuple[float, float, float, int]:
    """Session time from the sample that closes a step (its next IC for running, its final contact for
    walking, whichever is later) to the step's emission, sample by sample: (median s, share within 150 ms,
    max s, steps). The default walk (110 steps/min) has soft steps, whose rise stayed under the trigger
    level: the missed-step recovery finds them; in a slow walk (60 steps/min) the final contact's window is
    0.27 s long (docs/dsp_gait.md, "Latency")."""
    # (benchmarks/validate.py: the latency measured as for the real walks)
    from validate import step_latencies

    from pelvimon.dsp.pipeline import GaitPipeline
    from pelvimon.sensors.simulator import SimParams, simulate

    kw = {} if cadence is None else {"cadence_spm": cadence}
    b = simulate(SimParams(seconds=seconds, gait=gait, seed=5, **kw)).batch
    rows = step_latencies(GaitPipeline(FS), (b.slice(a, a + 1) for a in range(len(b))))
    x = np.array([lat for s, lat in rows if s.t_ic_s > 8.0])
    return float(np.median(x)), float(np.mean(x <= 0.150)), float(np.max(x)), x.size


def _memory(batch: object) -> tuple[float, float, float]:
    """tracemalloc peak (MB) streaming the recording twice (2000-sample chunks, steps drained)."""
    from pelvimon.dsp.pipeline import GaitPipeline

    n = len(batch)  # type: ignore[arg-type]
    tracemalloc.start()  # (before the pipeline is made: its fixed ring buffers count too)
    pipe = GaitPipeline(FS)
    peaks = []
    for rep in range(2):
        for a in range(0, n, 2000):
            pipe.update(batch.slice(a, min(n, a + 2000)))  # type: ignore[attr-defined]
            pipe.drain_steps()
        peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
        if rep == 0:
            tracemalloc.reset_peak()
    cur = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    return peaks[0], peaks[1], cur


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the simulated run (default 60)")
    ap.add_argument("--csv", help="the recording as CSV (created with pelvimon simulate if missing)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure, median reported (default 3)")
    ap.add_argument("--live-s", type=float, default=600.0, help="seconds of data for the live figure")
    args = ap.parse_args(argv)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.csv or os.path.join(tmp, "rec.csv")
        if not os.path.exists(path):
            seconds = int(round(args.minutes * 60))
            subprocess.run([str(BIN / "pelvimon"), "simulate", "--seconds", str(seconds), "-o", path], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        import pelvimon.cli  # noqa: F401 - imports outside the timings (the subprocess figures include them)
        import pelvimon.dsp.pipeline  # noqa: F401
        from pelvimon import motion_helper
        from pelvimon.analysis import load_batches
        from pelvimon.firmware_protocols.batch import ImuBatch

        batches = load_batches(path)  # (in the CSV source's chunks)
        batch = ImuBatch.concat(batches)  # the whole recording, for VQF alone, the live share and memory
        print(f"recording: {path}, {len(batch)} samples ({len(batch) / FS / 3600:.2f} h at {FS:.0f} Hz), "
              f"{os.path.getsize(path) / 1e6:.0f} MB")  # fmt: skip

        base, ana, parts, sub_base, sub_ana = [], [], [], [], []
        sub_cmds = ([sys.executable, "-c", _BASELINE_SCRIPT, path], [str(BIN / "pelvimon"), "analyze", path])
        for cmd in sub_cmds:
            _subprocess(cmd)  # (untimed: caches each side's bytecode, and the file's pages)
        for _ in range(args.repeat):
            base.append(_timed(lambda: _baseline(path)))
            ana.append(_timed(lambda: _analyze_cli_in_process(path)))
            parts.append(_parts(path))
            sub_base.append((_subprocess(sub_cmds[0]),))
            sub_ana.append((_subprocess(sub_cmds[1]),))
        bw, bc = _median(base)
        aw, ac = _median(ana)
        pl, pp, pa, ph, p1, n_steps = _median(parts)
        (sb,) = _median(sub_base)
        (sa,) = _median(sub_ana)
        print(f"median of {args.repeat} runs            wall s    CPU s")
        print(f"baseline read_csv + VQF          {bw:8.3f} {bc:8.3f}")
        print(f"pelvimon analyze (in process)    {aw:8.3f} {ac:8.3f}   ratio {aw / bw:4.2f} (CPU {ac / bc:4.2f}),"
              f" target <= 2")  # fmt: skip
        print(f"  {_spread(base, ana)}")
        print(f"  parts (CPU s): load {pl:.3f}, pipeline {pp:.3f}, asymmetry + alerts {pa:.3f}; {int(n_steps)} steps")
        print(f"  pipeline wall s: {ph:.3f} with the calibration and orientation in a helper process "
              f"({'used' if motion_helper.usable() else 'not available here'}), {p1:.3f} in one process")
        stages = _stages(batches)
        total = stages.pop("pipeline total")
        vqf_cpu = _timed(lambda: _baseline_vqf(batch))[1]
        print(f"  pipeline stages (CPU s, one run in one process; VQF alone over the recording {vqf_cpu:.3f}):")
        for label, v in stages.items():
            print(f"    {label:52s} {v:6.3f}")
        print(f"    {'rest of the pipeline':52s} {total - sum(stages.values()):6.3f}")
        print(f"baseline as a subprocess         {sb:8.3f}")
        print(f"pelvimon analyze (subprocess)    {sa:8.3f}            ratio {sa / sb:4.2f}")
        print(f"  {_spread(sub_base, sub_ana)}")

    live = _live(batch, args.live_s)
    print(f"live, 10-sample chunks           {live:7.2f} % of one core at {FS:.0f} Hz (target < 3 %)")
    for gait, cadence in (("run", None), ("walk", None), ("walk", 60.0)):
        med, within, worst, n = _latency(gait, cadence=cadence)
        label = gait if cadence is None else f"{gait} at {cadence:.0f} steps/min"
        print(f"latency, {label} (sample by sample, {n} steps)  median {med * 1000:.0f} ms, {within:.0%} within "
              f"150 ms, max {worst * 1000:.0f} ms")  # fmt: skip
    p1, p2, cur = _memory(batch)
    print(f"memory, 2 x {len(batch) / FS / 3600:.2f} h streamed: tracemalloc peak first pass {p1:.2f} MB, "
          f"second pass {p2:.2f} MB, held after {cur:.2f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
