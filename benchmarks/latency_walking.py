"""Latency of the real walks (voisard_l5_walking, read in place): every walk fed to the streaming pipeline one
sample at a time, as a sensor delivers it, and each step's latency measured in session time from the sample
that closes it (its final contact, or its next IC if later) to the sample whose update emitted it.

    python benchmarks/latency_walking.py                        # the 110 walks (about a minute on two cores)
    python benchmarks/latency_walking.py --recover-settle-s 0   # the missed-step recovery waiting for its deadline

Prints the share of steps out within 150 ms (the target: all of them), the median and the largest, and the
walks and steps over 150 ms (docs/dsp_gait.md, latency).
"""

from __future__ import annotations

import argparse
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validate  # noqa: E402

from pelvimon.dsp.events import EventParams  # noqa: E402
from pelvimon.dsp.pipeline import PipelineParams  # noqa: E402

LIMIT_S = 0.150


def walk_latencies(name: str, settle_s: float) -> list[tuple[float, float]]:
    """(IC time s, latency s) of each step of one walk fed sample by sample (:func:`validate.walking_latencies`)."""
    return validate.walking_latencies(name, PipelineParams(events=EventParams(recover_settle_s=settle_s)))[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recover-settle-s", type=float, default=EventParams().recover_settle_s)
    args = ap.parse_args(argv)
    names = validate.walking_names()
    with Pool(2) as pool:
        res = pool.starmap(walk_latencies, [(n, args.recover_settle_s) for n in names])
    lat = np.array([r[1] for rows in res for r in rows])
    print(f"{len(names)} walks, {lat.size} steps fed sample by sample (recover_settle_s {args.recover_settle_s:g} s)")
    print(f"  within 150 ms {np.mean(lat <= LIMIT_S):.4f} ({np.sum(lat > LIMIT_S)} over), "
          f"median {np.median(lat) * 1e3:.0f} ms, largest {lat.max() * 1e3:.0f} ms")
    for name, rows in zip(names, res, strict=True):
        late = [f"{t:.2f} s: {x * 1e3:.0f} ms" for t, x in rows if x > LIMIT_S]
        if late:
            print(f"  {name}: " + ", ".join(late))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
