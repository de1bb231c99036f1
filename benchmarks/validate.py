"""Accuracy of pelvimon's gait analysis against truth: every figure of docs/dsp_gait.md, in one table.

    python benchmarks/validate.py            # everything (simulator grid, 31 running trials, 110 walks)
    python benchmarks/validate.py --quick    # small subsets

Data sets (read from ../shared/datasets, never copied into the repository):

* Simulator (``pelvimon.sensors.simulator``): running 150-200 steps/min and walking 100-120 steps/min, random
  mountings, noise and bias on, CPD left != right. Scored on full-amplitude steps after the mount
  calibration (before it the pelvis angles are unknown by design).
* alcantara_running_sacral_grf: treadmill running, sacral accelerometer (vertical + AP, g, 500 Hz),
  force-treadmill reference. Reference contact: vertical GRF above 0.05 body weight (38 N for this
  76.8 kg runner, inside the customary 20-50 N), flights shorter than 20 ms merged and contacts shorter
  than 60 ms dropped. A detected step matches a reference contact when the ICs are within 60 ms.
  Every contact that has a next contact inside the trial is a reference step.
* voisard_l5_walking: overground walking with a U-turn, L5 IMU at 100 Hz, foot-IMU reference (swing
  intervals [TO, IC] per foot, in units of the L5 file's ``PacketCounter``). The L5 files lack 1-10 % of
  their packets: the samples are timed by that counter and fed as batches split at its jumps, with
  ``gap_before`` and ``n_lost``, as a BLE source would (the pipeline bridges the short losses). Scored
  inside ``TrialBoundaries``; ICs match within 150 ms (a quarter of a step). Every step counts, those
  flagged ``gap`` too (their metrics are left out, their contact and side are detections like any other).
  Laterality is scored on matched steps.

The matching and scoring code lives in ``pelvimon.dsp._gait_eval``; the tests use this module on subsets.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import importlib.util
import json
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.transform import Rotation

from pelvimon.dsp._gait_eval import match_times, rmse
from pelvimon.dsp.asymmetry import AsymmetryParams, session_gait
from pelvimon.dsp.calibration import calibrate_offline
from pelvimon.dsp.pipeline import GaitPipeline, PipelineParams, analyze_offline
from pelvimon.dsp.records import Step
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch
from pelvimon.sensors.simulator import SimParams, simulate

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
RUN_DIR = SHARED / "datasets" / "alcantara_running_sacral_grf"
WALK_DIR = SHARED / "datasets" / "voisard_l5_walking" / "GaitData"

GRF_THRESHOLD_BW = 0.05
RUN_TOL_S = 0.06
WALK_TOL_S = 0.15
USED_CONFIDENCE = AsymmetryParams().min_laterality_confidence


@dataclass
class Row:
    """One line of the result table."""

    data: str
    metric: str
    value: float
    target: str
    ok: bool
    note: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, data: str, metric: str, value: float, target: str, ok: bool, note: str = "") -> None:
        self.rows.append(Row(data, metric, float(value), target, bool(ok), note))

    def print(self) -> None:
        w = max(len(r.data) for r in self.rows)
        m = max(len(r.metric) for r in self.rows)
        print(f"{'data':<{w}}  {'metric':<{m}}  {'value':>10}  {'target':<10}  ok   note")
        for r in self.rows:
            v = f"{r.value:10.4f}" if abs(r.value) < 10 else f"{r.value:10.1f}"
            print(f"{r.data:<{w}}  {r.metric:<{m}}  {v}  {r.target:<10}  {'yes' if r.ok else 'NO ':<3}  {r.note}")


# ----------------------------------------------------------------------------------------------- simulator
SIM_CASES: list[dict] = [
    dict(gait="run", cadence_spm=150, cpd_left_deg=8, cpd_right_deg=4, mount_euler_deg=(0, 0, 0), seed=1),
    dict(gait="run", cadence_spm=165, cpd_left_deg=3, cpd_right_deg=7, mount_euler_deg=(90, 30, -120), seed=2),
    dict(gait="run", cadence_spm=180, cpd_left_deg=5, cpd_right_deg=9, mount_euler_deg=(170, -20, 60), seed=3),
    dict(gait="run", cadence_spm=190, cpd_left_deg=6, cpd_right_deg=2, mount_euler_deg=(-45, 60, 10), seed=4),
    dict(gait="run", cadence_spm=200, cpd_left_deg=4, cpd_right_deg=6, mount_euler_deg=(20, -70, 110), seed=5),
    dict(gait="walk", cadence_spm=100, cpd_left_deg=5, cpd_right_deg=3, mount_euler_deg=(0, 90, 0), seed=6),
    dict(gait="walk", cadence_spm=110, cpd_left_deg=2, cpd_right_deg=5, mount_euler_deg=(-20, 80, 45), seed=7),
    dict(gait="walk", cadence_spm=120, cpd_left_deg=4, cpd_right_deg=6, mount_euler_deg=(60, 10, -90), seed=8),
]


@dataclass
class SimScore:
    n_ref: int
    n_det: int
    tp: int
    ic_err_s: np.ndarray
    side_ok: np.ndarray
    cpd_err: np.ndarray
    tilt_err: np.ndarray
    rot_err: np.ndarray
    contact_err: np.ndarray
    vo_err: np.ndarray
    cadence_rel: float
    used_side_ok: np.ndarray
    """From the first step (ramp and before the calibration too): the side of each step the summaries use
    (laterality confidence >= 0.8) against the truth."""


def score_sim(seconds: float = 60.0, **kw) -> SimScore:
    """Simulate one session, analyse it with :func:`analyze_offline` and compare with the truth."""
    sim = simulate(SimParams(seconds=seconds, **kw))
    res = analyze_offline(sim.batch, rate_hz=sim.params.rate_hz)
    steps = [s for s in res.steps if not s.gap]
    truth = sim.truth.steps
    full = [s for s in truth if s.ramp >= 1.0]
    if not full:
        raise RuntimeError("simulation without full-amplitude steps")
    t0, t1 = full[0].t_ic_s - 0.05, full[-1].t_ic_s + 0.05
    det = [s for s in steps if t0 <= s.t_ic_s <= t1]
    m = match_times(np.array([s.t_ic_s for s in det]), np.array([s.t_ic_s for s in full]), 0.1)
    t_cal = res.calibration.t_calibrated_s_
    t_cal = np.inf if t_cal is None else t_cal
    sel = [(det[i], full[j]) for i, j in m.pairs if det[i].t_ic_s > t_cal + 1.0]
    d = [a for a, _ in sel]
    r = [b for _, b in sel]
    m_all = match_times(np.array([s.t_ic_s for s in steps]), np.array([s.t_ic_s for s in truth]), 0.1)
    used = [(steps[i], truth[j]) for i, j in m_all.pairs if steps[i].laterality_confidence >= USED_CONFIDENCE]
    return SimScore(
        n_ref=m.n_ref,
        n_det=m.n_det,
        tp=m.tp,
        ic_err_s=m.err_s,
        side_ok=np.array([a.side == b.side for a, b in sel], dtype=bool),
        cpd_err=np.array([a.cpd_deg - b.cpd_deg for a, b in sel]),
        tilt_err=np.array([a.tilt_range_deg - b.tilt_range_deg for a, b in sel]),
        rot_err=np.array([a.rotation_range_deg - b.rotation_range_deg for a, b in sel]),
        contact_err=np.array([a.contact_time_s - b.contact_time_s for a, b in sel]),
        vo_err=np.array([a.vertical_oscillation_cm - b.vertical_oscillation_cm for a, b in sel]),
        cadence_rel=abs(np.mean([a.cadence_spm for a in d]) / np.mean([b.cadence_spm for b in r]) - 1)
        if d
        else float("nan"),
        used_side_ok=np.array([a.side == b.side for a, b in used], dtype=bool),
    )


def eval_sim(table: Table, cases: list[dict], seconds: float) -> None:
    for gait in ("run", "walk"):
        sc = [score_sim(seconds, **c) for c in cases if c["gait"] == gait]
        if not sc:
            continue
        name = f"sim {gait} ({len(sc)} sessions)"
        tp = sum(s.tp for s in sc)
        rec = tp / sum(s.n_ref for s in sc)
        prec = tp / sum(s.n_det for s in sc)
        ic = np.concatenate([s.ic_err_s for s in sc])
        lat = np.concatenate([s.side_ok for s in sc])
        cad = max(s.cadence_rel for s in sc)
        table.add(name, "step recall", rec, ">= 0.995", rec >= 0.995, f"{tp}/{sum(s.n_ref for s in sc)}")
        table.add(name, "step precision", prec, ">= 0.995", prec >= 0.995)
        table.add(name, "median |IC error| ms", np.median(np.abs(ic)) * 1000, "<= 5", np.median(np.abs(ic)) <= 0.005)
        table.add(name, "laterality", lat.mean(), ">= 0.995", lat.mean() >= 0.995, f"{lat.size} steps")
        used = np.concatenate([s.used_side_ok for s in sc])
        table.add(name, "laterality, every step used by the summaries", used.mean(), "-", True,
                  f"{used.size} steps, from the first (confidence >= {USED_CONFIDENCE})")
        for label, key, tgt in (("CPD", "cpd_err", 0.5), ("tilt range", "tilt_err", 1.0), ("rotation range", "rot_err", 1.0)):
            e = rmse(np.concatenate([getattr(s, key) for s in sc]))
            table.add(name, f"{label} RMSE deg", e, f"<= {tgt}", e <= tgt)
        ce = np.concatenate([s.contact_err for s in sc])
        table.add(name, "contact time RMSE ms", rmse(ce) * 1000, "-", True, f"bias {np.nanmean(ce) * 1000:+.1f} ms")
        table.add(name, "cadence error (worst session)", cad, "<= 0.005", cad <= 0.005)
        _vo_row(table, name, sc)


def _vo_row(table: Table, name: str, sc: list[SimScore]) -> None:
    ve = np.concatenate([s.vo_err for s in sc])
    table.add(name, "vertical oscillation RMSE cm", rmse(ve), "-", True, f"bias {np.nanmean(ve):+.2f} cm")


LIMP_CASES = [
    dict(gait=g, step_time_asymmetry_pct=pct, mount_euler_deg=mount, seed=seed)
    for g, pct in (("run", 8.0), ("walk", 8.0))
    for seed, mount in ((4, (20.0, -70.0, 160.0)), (9, (90.0, 10.0, -30.0)))
]


def eval_limp(table: Table, seconds: float) -> None:
    """A limp (left and right steps of different lengths): the vertical oscillation per step."""
    for gait in ("run", "walk"):
        cases = [c for c in LIMP_CASES if c["gait"] == gait]
        sc = [score_sim(seconds, **c) for c in cases]
        _vo_row(table, f"sim {gait}, limp {cases[0]['step_time_asymmetry_pct']:g} % ({len(sc)} sessions)", sc)


# ----------------------------------------------------------------------------------------------- running
def load_running(data_dir: Path = RUN_DIR) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """(vertical acc g, AP acc g, GRF BW, info) of the 31 trials, 500 Hz."""
    a = pd.read_csv(data_dir / "Accelerometer_one_sub.csv.gz", header=None).to_numpy()
    f = pd.read_csv(data_dir / "GRF_one_sub.csv.gz", header=None).to_numpy()
    info = pd.read_csv(data_dir / "Sub_Info_one_sub.csv.gz")
    return a[:, :2480], a[:, 2480:], f, info


def reference_contacts(grf_bw: np.ndarray, fs: float, thr_bw: float = GRF_THRESHOLD_BW) -> np.ndarray:
    """Contacts (IC, TO) in s from the vertical GRF: threshold crossings, short flights merged, blips dropped."""
    c = grf_bw > thr_bw
    ic = np.flatnonzero(~c[:-1] & c[1:]) + 1
    to = np.flatnonzero(c[:-1] & ~c[1:]) + 1
    out: list[list[int]] = []
    for a in ic:
        b = to[to > a]
        if b.size == 0:
            break
        if out and a - out[-1][1] < 0.02 * fs:
            out[-1][1] = int(b[0])
        elif not out or a > out[-1][1]:
            out.append([int(a), int(b[0])])
    arr = np.array([x for x in out if x[1] - x[0] >= 0.06 * fs], dtype=float).reshape(-1, 2)
    return arr / fs


def reference_steps(grf_bw: np.ndarray, fs: float, thr_bw: float = GRF_THRESHOLD_BW) -> np.ndarray:
    """Reference steps (IC, TO) in s: every complete contact followed by another rising edge in the trial."""
    c = reference_contacts(grf_bw, fs, thr_bw)
    above = grf_bw > thr_bw
    rises = (np.flatnonzero(~above[:-1] & above[1:]) + 1) / fs
    keep = [k for k in range(c.shape[0]) if np.any(rises > c[k, 1])]
    return c[keep]


@dataclass
class RunScore:
    tp: int
    n_det: int
    n_ref: int
    ic_err_s: np.ndarray
    contact_err_s: np.ndarray
    gait: str | None
    """The session's gait as ``pelvimon analyze`` names it."""


def score_running_trial(acc_v_g: np.ndarray, acc_ap_g: np.ndarray, grf_bw: np.ndarray, fs: float = 500.0,
                        chunk: int = 10) -> RunScore:
    """Feed one trial through :class:`GaitPipeline` (accelerometer only) and score its steps."""
    n = acc_v_g.shape[0]
    t = np.arange(n) / fs
    # the two axes as a sensor frame (x = AP, z = vertical); the pipeline finds the gravity direction itself
    acc = np.column_stack([acc_ap_g, np.zeros(n), acc_v_g]) * G_MPS2
    pipe = GaitPipeline(fs)
    for a in range(0, n, chunk):
        pipe.update(ImuBatch(t_s=t[a : a + chunk], acc_mps2=acc[a : a + chunk], time_base="session"))
    pipe.finish()
    steps = [s for s in pipe.steps_ if not s.gap]
    ref = reference_steps(grf_bw, fs)
    m = match_times(np.array([s.t_ic_s for s in steps]), ref[:, 0], RUN_TOL_S)
    ct = np.array([steps[i].contact_time_s - (ref[j, 1] - ref[j, 0]) for i, j in m.pairs])
    return RunScore(m.tp, m.n_det, m.n_ref, m.err_s, ct, session_gait(pipe.steps_))


def eval_running(table: Table, trials: list[int] | None = None) -> None:
    av, aap, grf, _info = load_running()
    idx = range(av.shape[0]) if trials is None else trials
    sc = [score_running_trial(av[k], aap[k], grf[k]) for k in idx]
    tp = sum(s.tp for s in sc)
    nd = sum(s.n_det for s in sc)
    nr = sum(s.n_ref for s in sc)
    f1 = 2 * tp / (nd + nr)
    ic = np.concatenate([s.ic_err_s for s in sc])
    ct = np.concatenate([s.contact_err_s for s in sc])
    name = f"alcantara running ({len(sc)} trials)"
    table.add(name, "contact F1", f1, ">= 0.97", f1 >= 0.97, f"tp {tp}, det {nd}, ref {nr}")
    table.add(name, "median |IC error| ms", np.median(np.abs(ic)) * 1000, "<= 20", np.median(np.abs(ic)) <= 0.02,
              f"bias {np.median(ic) * 1000:+.1f} ms")
    e = rmse(ct) * 1000
    table.add(name, "contact time RMSE ms", e, "<= 25", e <= 25, f"bias {np.nanmean(ct) * 1000:+.1f} ms")
    n_run = sum(s.gait == "running" for s in sc)
    table.add(name, "session gait named running", n_run / len(sc), "-", True, f"{n_run} of {len(sc)} trials")


# ----------------------------------------------------------------------------------------------- walking
def walking_names(data_dir: Path = WALK_DIR) -> list[str]:
    return sorted({p.name.split(".")[0] for p in data_dir.glob("*.json.gz")})


@functools.cache
def load_walking(name: str, data_dir: Path = WALK_DIR) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
    """(acc m/s² (N, 3), gyr rad/s (N, 3), metadata, packet counter (N,)) of one trial's L5 sensor, 100 Hz.
    Read once per run (the streaming, offline and reference checks all use it; the arrays are not written)."""
    sig = pd.read_csv(data_dir / f"{name}_lb.txt.gz", sep="\t", skiprows=1).to_numpy()
    with gzip.open(data_dir / f"{name}.json.gz", "rt") as fh:
        meta = json.load(fh)
    return np.ascontiguousarray(sig[:, 1:4]), np.ascontiguousarray(sig[:, 4:7]), meta, sig[:, 0].astype(np.int64)


def walking_batches(acc: np.ndarray, gyr: np.ndarray, counter: np.ndarray, fs: float, chunk: int) -> list[ImuBatch]:
    """The samples timed by the packet counter, in chunks of ``chunk``, split where the counter jumps (the
    first batch after a jump has ``gap_before`` and ``n_lost``)."""
    t = counter / fs
    edges = [0, *(np.flatnonzero(np.diff(counter) > 1) + 1).tolist(), counter.shape[0]]
    out = []
    for i0, i1 in zip(edges[:-1], edges[1:], strict=True):
        lost = int(counter[i0] - counter[i0 - 1] - 1) if i0 > 0 else 0
        for a in range(i0, i1, chunk):
            b = min(a + chunk, i1)
            out.append(ImuBatch(t_s=t[a:b], acc_mps2=acc[a:b], gyr_rads=gyr[a:b], gap_before=a == i0 and lost > 0,
                                n_lost=lost if a == i0 else 0, time_base="session"))
    return out


@dataclass
class WalkScore:
    tp: int
    n_det: int
    n_ref: int
    ic_err_s: np.ndarray
    side_ok: np.ndarray
    calibrated: bool
    confidence: np.ndarray
    gait: str | None
    fc_err_s: np.ndarray
    """Walking steps matched to a reference IC: detected final contact minus the reference toe-off of the
    same foot (its first after that IC)."""
    contact_err_s: np.ndarray
    rotation_deg: tuple[np.ndarray, np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0), np.zeros(0))
    """Rotation ranges of the steps with pelvis angles: in straight walking, in the U-turn, and in the 2 s
    after it; NaN for steps whose pelvis turned too far off the running direction to give one."""


@functools.cache
def offline_mount(name: str) -> np.ndarray | None:
    """The mount :func:`calibrate_offline` finds over a whole walk (scalar-first quaternion), or None."""
    acc, gyr, _meta, counter = load_walking(name)
    return calibrate_offline(counter / 100.0, acc, gyr).mount_quat_wxyz


TURN_SETTLE_S = 2.0
"""How long after a walk's U-turn its steps are counted apart in the rotation-range row."""


def score_walking_trial(name: str, calibration: str = "stream", chunk: int = 10,
                        remount: np.ndarray | None = None) -> WalkScore:
    """Feed one walk through :class:`GaitPipeline` and score ICs and sides against the foot sensors.

    ``calibration``: "stream" (the pipeline's own streaming mount calibration) or "offline" (the mount from
    :func:`calibrate_offline` over the whole trial, given to the pipeline). ``remount``: a rotation matrix
    (3, 3) applied to the sensor's samples, as if it had been clipped on turned that way.
    """
    fs = 100.0
    acc, gyr, meta, counter = load_walking(name)
    if remount is not None:
        acc, gyr = np.ascontiguousarray(acc @ remount.T), np.ascontiguousarray(gyr @ remount.T)
    params = None
    calibrated = True
    if calibration == "offline":
        mount = offline_mount(name)
        if mount is not None:
            params = PipelineParams(mount_quat_wxyz=tuple(float(v) for v in mount))
        else:
            calibrated = False
    pipe = GaitPipeline(fs, params)
    for b in walking_batches(acc, gyr, counter, fs, chunk):
        pipe.update(b)
    pipe.finish()
    if calibration == "stream":
        calibrated = pipe.calibration_.state_ == "calibrated"
    b0, b1 = (v / fs for v in meta["TrialBoundaries"])
    refs = [(e / fs, "L") for _, e in meta["LeftFootEvents"]] + [(e / fs, "R") for _, e in meta["RightFootEvents"]]
    refs = sorted(r for r in refs if b0 <= r[0] <= b1)
    steps = list(pipe.steps_)
    ics = detected_ics(steps)
    keep = (ics[:, 0] >= b0 - WALK_TOL_S) & (ics[:, 0] <= b1 + WALK_TOL_S)
    ics = ics[keep]
    m = match_times(ics[:, 0], np.array([r[0] for r in refs]), WALK_TOL_S)
    # laterality is scored on steps (ICs that start a step)
    side_ok = np.array([ics[i, 1] == (refs[j][1] == "L") for i, j in m.pairs if ics[i, 1] >= 0], dtype=bool)
    conf_of = {round(st.t_ic_s, 9): st.laterality_confidence for st in steps}
    conf = np.array([conf_of.get(round(ics[i, 0], 9), np.nan) for i, j in m.pairs if ics[i, 1] >= 0])
    # toe-offs: the reference's [start, end] is a foot's swing, start = toe-off; a step's final contact is
    # its foot's first toe-off after its initial contact
    to = {foot: np.array([a for a, _ in meta[key]], dtype=np.float64) / fs
          for foot, key in (("L", "LeftFootEvents"), ("R", "RightFootEvents"))}  # fmt: skip
    by_ic = {round(st.t_ic_s, 9): st for st in steps if not st.gap and st.flight_time_s == 0.0}
    fc_err, ct_err = [], []
    for i, j in m.pairs:
        st = by_ic.get(round(ics[i, 0], 9))
        ic_ref, foot = refs[j]
        later = to[foot][to[foot] > ic_ref]
        # (a toe-off over 1.5 s after the heel strike belongs to the next walk after a stop or the turn)
        if st is not None and later.size and later[0] - ic_ref < 1.5 and np.isfinite(st.t_fc_s):
            fc_err.append(st.t_fc_s - later[0])
            ct_err.append(st.contact_time_s - (later[0] - ic_ref))
    u0, u1 = (v / fs for v in meta["UTurnBoundaries"])
    # (steps with pelvis angles; their rotation is NaN where a turn took the pelvis far off the running direction)
    rot = [(st.t_ic_s, st.rotation_range_deg) for st in steps if math.isfinite(st.tilt_range_deg)]
    rotation = (np.array([r for t, r in rot if not u0 <= t <= u1 + TURN_SETTLE_S]),
                np.array([r for t, r in rot if u0 <= t <= u1]),
                np.array([r for t, r in rot if u1 < t <= u1 + TURN_SETTLE_S]))  # fmt: skip
    return WalkScore(m.tp, m.n_det, m.n_ref, m.err_s, side_ok, calibrated, conf, session_gait(steps),
                     np.array(fc_err), np.array(ct_err), rotation)


def step_latencies(pipe: GaitPipeline, batches: Iterable[ImuBatch]) -> list[tuple[Step, float]]:
    """Each step (not ``gap``) that ``pipe`` emits as ``batches`` are fed in turn, with its latency: the session
    time from the sample that closes it (its final contact, or its next IC if later) to the last sample of
    the batch whose update emitted it (batches of one sample: as a sensor delivers them)."""
    rows = []
    for b in batches:
        for s in pipe.update(b).steps:
            if not s.gap:
                closing = max(s.t_ic_s + s.step_time_s, s.t_fc_s if np.isfinite(s.t_fc_s) else -np.inf)
                rows.append((s, float(b.t_s[-1]) - closing))
    return rows


def walking_latencies(name: str, params: PipelineParams | None = None,
                      data_dir: Path | None = None) -> tuple[list[tuple[float, float]], int]:
    """One walk fed to the streaming pipeline a sample at a time (:func:`step_latencies`): per step (IC time
    s, latency s); and the rises the missed-step recovery took (benchmarks/latency_walking.py)."""
    fs = 100.0
    acc, gyr, _meta, counter = load_walking(name, WALK_DIR if data_dir is None else data_dir)
    pipe = GaitPipeline(fs, params)
    rows = step_latencies(pipe, walking_batches(acc, gyr, counter, fs, 1))
    return [(s.t_ic_s, lat) for s, lat in rows], pipe._detector.n_recovered_


def detected_ics(steps: list) -> np.ndarray:
    """Every detected IC: the ICs of the steps and the IC that closes each step, as (t_s, side) rows.

    ``side`` is 1 for a left and 0 for a right step, -1 for an IC that only closes a step (the last IC of
    a bout, which starts no step of its own).
    """
    rows: dict[float, float] = {}
    for s in steps:
        rows[round(s.t_ic_s, 9)] = 1.0 if s.side == "L" else 0.0
    for s in steps:
        if np.isfinite(s.step_time_s):
            t_next = round(s.t_ic_s + s.step_time_s, 9)
            if all(abs(t_next - t) > 1e-6 for t in rows):
                rows[t_next] = -1.0
    out = np.array(sorted(rows.items()), dtype=float).reshape(-1, 2)
    return out


SWAPPED_REFERENCE = ("4-1", "4-2")
"""Trials whose reference left and right look swapped: every step of theirs is sided the other way, and
their pelvic roll after a reference left heel strike runs the other way from all 108 other trials
(:func:`reference_roll`), with the same sensor mounting as the subject's four other trials. Reported as
published and, in one extra row, without them."""


def reference_roll(name: str) -> float:
    """Mean pelvic roll rate (about the forward axis, rad/s, mount from :func:`calibrate_offline`) over the
    150 ms after the reference's left heel strikes minus that after its right ones. The pelvis rolls
    towards the swing side after heel strike, so the sign is the same in every trial whose reference
    names the feet right; NaN without a mount."""
    acc, gyr, meta, counter = load_walking(name)
    fs = 100.0
    mount = offline_mount(name)
    if mount is None:
        return float("nan")
    w, x, y, z = mount
    roll = (Rotation.from_quat([x, y, z, w]).apply(gyr))[:, 0]
    b0, b1 = meta["TrialBoundaries"]
    n = int(round(0.15 * fs))

    def mean_after(events: list) -> float:
        ks = [int(np.searchsorted(counter, e)) for _, e in events if b0 <= e <= b1]
        return float(np.mean([roll[k : k + n].mean() for k in ks if k + n <= roll.shape[0]]))

    return mean_after(meta["LeftFootEvents"]) - mean_after(meta["RightFootEvents"])


def eval_reference(table: Table, names: list[str]) -> None:
    roll = {nm: reference_roll(nm) for nm in names}
    flipped = sorted(nm for nm, v in roll.items() if v < 0)
    vals = np.array([v for v in roll.values() if np.isfinite(v)])
    table.add("voisard walking, reference check", "trials with the pelvic roll reversed", float(len(flipped)), "-",
              True, f"{', '.join(flipped) or 'none'} of {len(names)}; median roll difference {np.median(vals):+.2f} rad/s")


def eval_walking(table: Table, names: list[str] | None = None) -> dict[str, WalkScore]:
    """The walking rows; returns the streaming calibration's score of each trial."""
    names = walking_names() if names is None else names
    stream: dict[str, WalkScore] = {}
    for mode in ("stream", "offline"):
        sc = [score_walking_trial(nm, mode) for nm in names]
        if mode == "stream":
            stream = dict(zip(names, sc, strict=True))
        kept = [s for nm, s in zip(names, sc, strict=True) if nm not in SWAPPED_REFERENCE]
        tp = sum(s.tp for s in sc)
        nd = sum(s.n_det for s in sc)
        nr = sum(s.n_ref for s in sc)
        f1 = 2 * tp / (nd + nr)
        ic = np.concatenate([s.ic_err_s for s in sc])
        lat = np.concatenate([s.side_ok for s in sc])
        n_cal = sum(s.calibrated for s in sc)
        name = f"voisard walking ({len(sc)} trials, {mode} calibration)"
        table.add(name, "IC F1", f1, ">= 0.90", f1 >= 0.90, f"tp {tp}, det {nd}, ref {nr}")
        table.add(name, "median |IC error| ms", np.median(np.abs(ic)) * 1000, "<= 40", np.median(np.abs(ic)) <= 0.04,
                  f"bias {np.median(ic) * 1000:+.1f} ms")
        table.add(name, "laterality", lat.mean(), ">= 0.90", lat.mean() >= 0.90,
                  f"{lat.size} steps; mount found in {n_cal}/{len(sc)} trials")
        if len(kept) < len(sc):
            lk = np.concatenate([s.side_ok for s in kept])
            table.add(name, f"laterality without {', '.join(SWAPPED_REFERENCE)}", lk.mean(), "-", True,
                      f"{lk.size} steps; their reference looks side-swapped (see the reference check)")
        if mode == "stream":
            fe = np.concatenate([s.fc_err_s for s in sc])
            ce = np.concatenate([s.contact_err_s for s in sc])
            table.add(name, "median |final contact error| ms", np.median(np.abs(fe)) * 1000, "-", True,
                      f"bias {np.median(fe) * 1000:+.0f} ms; {np.mean(np.abs(fe) > 0.1):.0%} of {fe.size} over 100 ms")
            table.add(name, "contact time RMSE ms", rmse(ce) * 1000, "-", True,
                      f"median |error| {np.median(np.abs(ce)) * 1000:.0f} ms")
            straight, turn, after = (np.concatenate([s.rotation_deg[k] for s in sc]) for k in range(3))

            def kept(r: np.ndarray) -> str:
                return f"{np.isfinite(r).sum()} of {r.size} steps"

            table.add(name, "median rotation range deg, straight", np.nanmedian(straight), "-", True,
                      f"{kept(straight)}; U-turn {np.nanmedian(turn):.1f} ({kept(turn)}), {TURN_SETTLE_S:g} s "
                      f"after it {np.nanmedian(after):.1f} ({kept(after)}, {np.mean(after[np.isfinite(after)] > 30):.0%} "
                      "over 30 deg)")
        conf = np.concatenate([s.confidence for s in sc])
        sure = conf >= 0.8
        table.add(name, "laterality, confidence >= 0.8", lat[sure].mean() if sure.any() else np.nan, "-", True,
                  f"{sure.mean():.0%} of the steps are that confident")
        if mode == "stream":
            other = [nm for nm, s in zip(names, sc, strict=True) if s.gait != "walking"]
            table.add(name, "session gait named walking", 1 - len(other) / len(sc), "-", True,
                      f"{len(sc) - len(other)} of {len(sc)} trials" + (f"; not {', '.join(other)}" if other else ""))
    return stream


REMOUNTS = {
    "turned 90 deg about the spine": (0.0, 0.0, 90.0),
    "upside down": (180.0, 0.0, 0.0),
    "tilted 30 deg and turned 45 deg": (30.0, 0.0, 45.0),
    "random": (-131.0, 47.0, 162.0),
}
"""Sensor mountings the real walks are run again with (extrinsic x-y-z Euler angles, deg)."""


def eval_walking_remounted(table: Table, names: list[str], stream: dict[str, WalkScore]) -> None:
    """The real walks with the sensor's samples rotated as if it had been clipped on another way: the
    streaming calibration should find each mounting, and the steps and sides come out as mounted as recorded."""
    from scipy.spatial.transform import Rotation

    base = [stream[nm] for nm in names]  # (as mounted: names are among the walks eval_walking scored)
    for label, euler in REMOUNTS.items():
        m = Rotation.from_euler("xyz", euler, degrees=True).as_matrix()
        sc = [score_walking_trial(nm, remount=m) for nm in names]
        tp = sum(s.tp for s in sc)
        f1 = 2 * tp / sum(s.n_det + s.n_ref for s in sc)
        lat = np.concatenate([s.side_ok for s in sc])
        same = sum(s.tp == b.tp and s.n_det == b.n_det and np.array_equal(s.side_ok, b.side_ok)
                   and np.allclose(s.ic_err_s, b.ic_err_s, atol=1e-3) for s, b in zip(sc, base, strict=True))
        table.add(f"voisard walking remounted: {label} ({len(names)} trials)", "IC F1 / laterality", f1, "-", True,
                  f"laterality {lat.mean():.3f}; {same}/{len(names)} trials give the recorded mounting's steps and sides")


# ----------------------------------------------------------------------------------------------- main
def _orientation(quick: bool) -> None:
    path = HERE / "validate_orientation.py"
    if not path.is_file():
        print("(benchmarks/validate_orientation.py not present: orientation figures skipped)")
        return
    spec = importlib.util.spec_from_file_location("validate_orientation", path)
    if spec is None or spec.loader is None:
        return
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    main = getattr(mod, "main", None)
    if callable(main):
        print("\n== benchmarks/validate_orientation.py ==")
        main(["--sims", "4"] if quick else [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small subsets (about 30 s)")
    ap.add_argument("--skip-orientation", action="store_true", help="do not run validate_orientation.py")
    args = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    table = Table()
    cases = SIM_CASES[::2] if args.quick else SIM_CASES
    eval_sim(table, cases, 40.0 if args.quick else 90.0)
    eval_limp(table, 40.0 if args.quick else 60.0)
    eval_running(table, list(range(0, 31, 3)) if args.quick else None)
    names = walking_names()
    stream = eval_walking(table, names[::8] if args.quick else names)
    eval_reference(table, names[::8] if args.quick else names)
    eval_walking_remounted(table, names[::8] if args.quick else names[::4], stream)
    table.print()
    print(f"({time.perf_counter() - t0:.1f} s)")
    if not args.skip_orientation:
        _orientation(args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
