"""Scoring of detected steps against a reference (simulator truth, force plate, foot sensors).

Used by the tests and by ``benchmarks/validate.py`` so that every accuracy figure is computed one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..firmware_protocols.batch import ImuBatch
from .asymmetry import step_gait


@dataclass(frozen=True)
class Match:
    """One-to-one matching of detected to reference event times.

    ``pairs`` (K, 2) holds (detected index, reference index); ``err_s`` the detected minus reference times.
    """

    pairs: np.ndarray
    err_s: np.ndarray
    n_det: int
    n_ref: int

    @property
    def tp(self) -> int:
        return int(self.pairs.shape[0])

    @property
    def recall(self) -> float:
        return self.tp / self.n_ref if self.n_ref else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / self.n_det if self.n_det else float("nan")

    @property
    def f1(self) -> float:
        d = self.n_det + self.n_ref
        return 2.0 * self.tp / d if d else float("nan")


def match_times(det_s: np.ndarray, ref_s: np.ndarray, tol_s: float) -> Match:
    """Match each reference time to the nearest unused detected time within ``tol_s`` (greedy by error).

    Parameters
    ----------
    det_s, ref_s : ndarray, shape (N,), (M,)
        Detected and reference event times, s.
    tol_s : float
        Largest accepted |error|, s.
    """
    det = np.asarray(det_s, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref_s, dtype=np.float64).reshape(-1)
    if det.size == 0 or ref.size == 0:
        return Match(np.zeros((0, 2), dtype=int), np.zeros(0), det.size, ref.size)
    d = np.abs(det[:, None] - ref[None, :])
    cand = np.argwhere(d <= tol_s)
    order = np.argsort(d[cand[:, 0], cand[:, 1]], kind="stable")
    used_d: set[int] = set()
    used_r: set[int] = set()
    pairs = []
    for k in order:
        i, j = int(cand[k, 0]), int(cand[k, 1])
        if i in used_d or j in used_r:
            continue
        used_d.add(i)
        used_r.add(j)
        pairs.append((i, j))
    pairs.sort()
    p = np.array(pairs, dtype=int).reshape(-1, 2)
    err = det[p[:, 0]] - ref[p[:, 1]] if p.size else np.zeros(0)
    return Match(p, err, det.size, ref.size)


def rmse(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x * x))) if x.size else float("nan")


def chunked_steps(detector: Any, t_s: np.ndarray, acc_mps2: np.ndarray, chunk: int) -> list[Any]:
    """Feed a gait event detector the samples ``chunk`` at a time, then flush it: every step it emitted, in
    order (streaming equals batch: any ``chunk`` gives the same)."""
    out: list[Any] = []
    for a in range(0, t_s.shape[0], chunk):
        detector.update(t_s[a : a + chunk], acc_mps2[a : a + chunk])
        out += detector.steps_
    detector.flush()
    return out + detector.steps_


def lossy_batches(batch: ImuBatch, loss: float, seed: int, per: int = 8) -> list[ImuBatch]:
    """``batch`` cut into notifications of ``per`` samples, a random fraction ``loss`` of them lost (never
    the first); the batch after a loss has ``gap_before`` and ``n_lost``, as a sensor source delivers it."""
    rng = np.random.default_rng(seed)
    out, lost = [], 0
    for a in range(0, len(batch), per):
        if a > 0 and rng.random() < loss:
            lost += per
            continue
        s = batch.slice(a, a + per)
        out.append(ImuBatch(t_s=s.t_s, acc_mps2=s.acc_mps2, gyr_rads=s.gyr_rads, gap_before=lost > 0,
                            n_lost=lost, time_base="session"))
        lost = 0
    return out


@dataclass(frozen=True)
class BoutScore:
    """Detected steps against the simulator's truth over one bout of gait (its full-amplitude steps)."""

    match: Match
    laterality: float
    cpd_rmse_deg: float
    n_cpd: int
    running_agree: float
    """Fraction of the matched steps whose gait (:func:`~pelvimon.dsp.asymmetry.step_gait`) agrees with the
    truth's (a flight in the truth: running)."""


def score_bout(steps: list[Any], truth: list[Any], t0_s: float, t1_s: float, tol_s: float = 0.1) -> BoutScore:
    """Score the detected ``steps`` (:class:`~pelvimon.dsp.records.Step`, gap-flagged ones left out) on the
    truth steps (``TruthStep``) of full amplitude (``ramp >= 1``) with ICs in ``[t0_s, t1_s)``."""
    ref = [s for s in truth if t0_s <= s.t_ic_s < t1_s and s.ramp >= 1.0]
    if not ref:
        raise ValueError(f"no full-amplitude truth step in {t0_s:g}..{t1_s:g} s")
    det = [s for s in steps if not s.gap and ref[0].t_ic_s - tol_s / 2 <= s.t_ic_s <= ref[-1].t_ic_s + tol_s / 2]
    m = match_times(np.array([s.t_ic_s for s in det]), np.array([s.t_ic_s for s in ref]), tol_s)
    pairs = [(det[i], ref[j]) for i, j in m.pairs]
    cpd = np.array([a.cpd_deg - b.cpd_deg for a, b in pairs])
    return BoutScore(
        match=m,
        laterality=float(np.mean([a.side == b.side for a, b in pairs])) if pairs else float("nan"),
        cpd_rmse_deg=rmse(cpd),
        n_cpd=int(np.count_nonzero(np.isfinite(cpd))),
        running_agree=float(np.mean([(step_gait(a) == "running") == (b.flight_time_s > 0) for a, b in pairs]))
        if pairs
        else float("nan"),
    )
