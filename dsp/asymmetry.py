"""Left/right asymmetry of per-step gait metrics over rolling windows of steps.

For every metric (``cpd_deg``, ``contact_time_s``, ...) the steps of each stance side are kept in a
rolling window (by default the last 20 valid steps per side). From the two windows come the left and right
means and standard deviations, the difference ``L - R`` with a Welch t confidence interval, and the
symmetry index ``100 (L - R) / (0.5 (L + R))``. See docs/asymmetry_and_alerts.md for the statistics.

Rules that keep the comparison honest (the "masked endpoints" idea):

* steps flagged ``gap`` (data loss, reconnect) are never used; the open step at a restart of the analysis
  (``breaks_sequence``: a long loss or a reconnect, after which the sides are learnt again) resets the
  windows, a step over a short loss that the pipeline bridged does not (the sides ran on across it);
* a bout boundary (no step for longer than ``max_step_interval_s``: the runner stopped) resets the windows;
* steps whose ``laterality_confidence`` is below ``min_laterality_confidence`` are skipped (not a reset);
* a metric is reported only once both sides hold ``min_steps_per_side`` finite values.

Successive steps are autocorrelated (speed drifts, fatigue, long-range correlations of stride intervals),
so ``n`` steps carry less information than ``n`` independent values. By default the standard error of each
side's mean uses an effective sample size from a pooled lag-1 autocorrelation ``rho`` (AR(1) model:
``n_eff = n (1 - rho) / (1 + rho)``), with ``rho`` clipped to ``[0, max_autocorrelation]`` so that the
interval is never narrower than the independent-samples one.

Everything here is numpy/scipy only and computes once per ``update`` call, not per sample.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Literal, TypeVar

import numpy as np
from scipy import special

from .records import Asymmetry, Step

METRICS: tuple[str, ...] = (
    "cpd_deg",
    "contact_time_s",
    "step_time_s",
    "flight_time_s",
    "obliquity_range_deg",
    "tilt_range_deg",
    "rotation_range_deg",
    "vertical_oscillation_cm",
    "impact_g",
)
"""The ``Step`` fields compared between sides, in display order."""

Autocorrelation = Literal["ar1", "iid"]


@dataclass(frozen=True)
class AsymmetryParams:
    """Parameters of the asymmetry windows and statistics.

    Attributes
    ----------
    window_steps : int
        Valid steps kept per side (the rolling window), >= 2.
    window_s : float or None
        Optional time limit: steps whose initial contact is older than this many seconds before the newest
        step leave the window. None = count-based window only.
    min_steps_per_side : int
        A metric is reported once both sides hold at least this many finite values, >= 2.
    level : float
        Confidence level of the difference interval (0 < level < 1).
    min_laterality_confidence : float
        Steps with a lower ``laterality_confidence`` are skipped.
    max_step_interval_s : float
        A longer time between successive initial contacts is a bout boundary: the windows restart.
    autocorrelation : {"ar1", "iid"}
        "ar1": effective sample size from the pooled lag-1 autocorrelation; "iid": steps as independent.
    max_autocorrelation : float
        Upper clip of the estimated lag-1 autocorrelation (0 <= value < 1).
    metrics : tuple of str
        ``Step`` fields to compare.
    """

    window_steps: int = 20
    window_s: float | None = None
    min_steps_per_side: int = 8
    level: float = 0.95
    min_laterality_confidence: float = 0.8
    max_step_interval_s: float = 2.0
    autocorrelation: Autocorrelation = "ar1"
    max_autocorrelation: float = 0.6
    metrics: tuple[str, ...] = METRICS

    def __post_init__(self) -> None:
        if self.window_steps < 2:
            raise ValueError(f"window_steps must be >= 2, got {self.window_steps}")
        if self.window_s is not None and not self.window_s > 0:
            raise ValueError(f"window_s must be > 0 or None, got {self.window_s}")
        if not 2 <= self.min_steps_per_side <= self.window_steps:
            raise ValueError(
                f"min_steps_per_side must be between 2 and window_steps ({self.window_steps}), "
                f"got {self.min_steps_per_side}"
            )
        if not 0 < self.level < 1:
            raise ValueError(f"level must be between 0 and 1, got {self.level}")
        if not 0 <= self.min_laterality_confidence <= 1:
            raise ValueError(
                f"min_laterality_confidence must be in [0, 1], got {self.min_laterality_confidence}"
            )
        if not self.max_step_interval_s > 0:
            raise ValueError(f"max_step_interval_s must be > 0, got {self.max_step_interval_s}")
        if self.autocorrelation not in ("ar1", "iid"):
            raise ValueError(f"autocorrelation must be 'ar1' or 'iid', got {self.autocorrelation!r}")
        if not 0 <= self.max_autocorrelation < 1:
            raise ValueError(f"max_autocorrelation must be in [0, 1), got {self.max_autocorrelation}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ValueError(f"metrics must be a non-empty subset of {METRICS}, got unknown {unknown}")


@dataclass(frozen=True)
class SideStats:
    """Summary of one side's values of one metric.

    ``n`` finite values, their ``mean`` and sample SD (``ddof=1``), the lag-1 autocorrelation ``rho`` used
    and the effective sample size ``n_eff`` that the standard error ``sd / sqrt(n_eff)`` of the mean uses.
    """

    n: int
    mean: float
    sd: float
    rho: float
    n_eff: float

    @property
    def sem(self) -> float:
        """Standard error of the mean (same unit as the metric)."""
        return self.sd / math.sqrt(self.n_eff) if self.n_eff > 0 else math.nan

    def to_dict(self) -> dict[str, float | int]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "rho": self.rho, "n_eff": self.n_eff}


def _column_sums(x: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per column of ``x`` (n, M): count, mean, sum of squares and lag-1 cross sum of finite values.

    Lag-1 pairs count only when both values are finite and in the same segment.
    """
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(ok, x, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    d = np.where(ok, x - mean, 0.0)
    ss = np.sum(d * d, axis=0)
    same = (seg[1:] == seg[:-1]).astype(np.float64)[:, None]
    lag = np.sum(d[:-1] * d[1:] * same, axis=0) if x.shape[0] > 1 else np.zeros(x.shape[1])
    return n, mean, ss, lag


def _pooled_rho(
    nl: np.ndarray, nr: np.ndarray, den: np.ndarray, lag: np.ndarray, kind: Autocorrelation, max_rho: float
) -> np.ndarray:
    """Pooled lag-1 autocorrelation of both sides, element for element, from the counts, the summed squared
    deviations ``den`` and the summed lag-1 products ``lag``: bias-corrected and clipped to ``[0, max_rho]``
    ("ar1"), or 0 ("iid")."""
    if kind != "ar1":
        return np.zeros_like(den)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, lag / np.where(den > 0, den, 1.0), 0.0)
        # small-sample bias of the lag-1 estimate with an estimated mean: E[r] ~ rho - (1 + 4 rho) / n
        n_side = np.maximum(0.5 * (nl + nr), 1.0)
        rho = rho + (1.0 + 4.0 * rho) / n_side
    return np.clip(rho, 0.0, max_rho)


def side_stats_columns(
    left: np.ndarray,
    right: np.ndarray,
    *,
    left_segments: np.ndarray | None = None,
    right_segments: np.ndarray | None = None,
    autocorrelation: Autocorrelation = "ar1",
    max_autocorrelation: float = 0.6,
) -> list[tuple[SideStats, SideStats]]:
    """Per-side statistics of several metrics at once, with a pooled lag-1 autocorrelation per metric.

    Parameters
    ----------
    left, right : ndarray, shape (n_left, M), (n_right, M)
        Metric values of left- and right-stance steps in time order, one column per metric (NaN = missing).
    left_segments, right_segments : ndarray of int, shape (n_left,), (n_right,), optional
        Bout number of each step; autocorrelation pairs never cross bouts.
    autocorrelation, max_autocorrelation
        See ``AsymmetryParams``.

    Returns
    -------
    list of (SideStats, SideStats)
        One (left, right) pair per column.
    """
    sums = []
    for x, seg in ((left, left_segments), (right, right_segments)):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        seg = np.zeros(x.shape[0], dtype=np.int64) if seg is None else np.asarray(seg)
        sums.append(_column_sums(x, seg))
    (nl, ml, ssl, lagl), (nr, mr, ssr, lagr) = sums
    den = ssl + ssr
    rho = _pooled_rho(nl, nr, den, lagl + lagr, autocorrelation, max_autocorrelation)
    out = []
    for j in range(den.shape[0]):
        pair = []
        for n, m, ss in ((nl[j], ml[j], ssl[j]), (nr[j], mr[j], ssr[j])):
            n = int(n)
            sd = float(np.sqrt(ss / (n - 1))) if n > 1 else math.nan
            n_eff = max(n * (1.0 - rho[j]) / (1.0 + rho[j]), min(n, 2.0)) if n else 0.0
            pair.append(SideStats(n=n, mean=float(m), sd=sd, rho=float(rho[j]), n_eff=float(n_eff)))
        out.append((pair[0], pair[1]))
    return out


def compare_sides(
    left: np.ndarray,
    right: np.ndarray,
    *,
    left_segments: np.ndarray | None = None,
    right_segments: np.ndarray | None = None,
    autocorrelation: Autocorrelation = "ar1",
    max_autocorrelation: float = 0.6,
) -> tuple[SideStats, SideStats]:
    """Per-side statistics of one metric (``left``, ``right``: shape (n,), time order, NaN = missing).

    See ``side_stats_columns``.
    """
    return side_stats_columns(
        np.asarray(left, dtype=np.float64).reshape(-1, 1),
        np.asarray(right, dtype=np.float64).reshape(-1, 1),
        left_segments=left_segments,
        right_segments=right_segments,
        autocorrelation=autocorrelation,
        max_autocorrelation=max_autocorrelation,
    )[0]


def _welch_parts(
    left: Sequence[np.ndarray], right: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The difference of the means, its Welch-Satterthwaite degrees of freedom, its squared standard error and
    where it has an interval (both sides hold 2 values), element for element; see :func:`_welch_bounds`."""
    lm, lsd, ln, lneff = left
    rm, rsd, rn, rneff = right
    diff = lm - rm
    with np.errstate(invalid="ignore", divide="ignore"):
        vl = lsd**2 / lneff
        vr = rsd**2 / rneff
        se2 = vl + vr
        df = se2**2 / (vl**2 / np.maximum(lneff - 1, 1e-9) + vr**2 / np.maximum(rneff - 1, 1e-9))
        # tiny spreads underflow to 0/0: fall back to the smaller side's degrees of freedom
        df = np.where(np.isfinite(df), df, np.maximum(np.minimum(lneff, rneff) - 1, 1.0))
    valid = (ln >= 2) & (rn >= 2) & np.isfinite(diff)
    return diff, df, se2, valid


def _welch_bounds(
    diff: np.ndarray, df: np.ndarray, se2: np.ndarray, valid: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """The ``level`` interval of the differences from :func:`_welch_parts` (same shapes): NaN where not
    ``valid``, the point where the standard error is 0. Element for element (the t quantile, the costly
    part, is computed for the given elements only)."""
    pos = valid & (se2 > 0)
    half = np.zeros_like(diff)
    if np.any(pos):
        half[pos] = special.stdtrit(df[pos], 0.5 + level / 2) * np.sqrt(se2[pos])
    lo = np.where(valid, diff - half, np.nan)
    hi = np.where(valid, diff + half, np.nan)
    return lo, hi


def _welch_arrays(
    left: Sequence[np.ndarray],
    right: Sequence[np.ndarray],
    level: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    diff, df, se2, valid = _welch_parts(left, right)
    lo, hi = _welch_bounds(diff, df, se2, valid, level)
    return diff, lo, hi


def welch_interval(left: SideStats, right: SideStats, level: float = 0.95) -> tuple[float, float, float]:
    """Difference of means ``L - R`` and its Welch t confidence interval.

    Uses each side's effective sample size for the standard errors and the Welch-Satterthwaite degrees of
    freedom. Returns ``(diff, low, high)``; with zero spread on both sides the interval is the point; NaN
    bounds when a side has fewer than 2 values.
    """
    d, lo, hi = _welch_arrays(
        [np.array([v], dtype=np.float64) for v in (left.mean, left.sd, left.n, left.n_eff)],
        [np.array([v], dtype=np.float64) for v in (right.mean, right.sd, right.n, right.n_eff)],
        level,
    )
    return float(d[0]), float(lo[0]), float(hi[0])


def symmetry_index_pct(left_mean: float, right_mean: float) -> float:
    """``100 (L - R) / (0.5 (L + R))`` in %; NaN when the mean of both sides is (near) zero."""
    mid = 0.5 * (left_mean + right_mean)
    if not math.isfinite(mid) or abs(mid) < 1e-12:
        return math.nan
    return 100.0 * (left_mean - right_mean) / mid


def make_asymmetries(
    metrics: Sequence[str],
    t_start_s: float,
    t_end_s: float,
    sides: Sequence[tuple[SideStats, SideStats]],
    level: float,
    min_n: int = 2,
) -> dict[str, Asymmetry]:
    """``Asymmetry`` records of several metrics from their (left, right) statistics.

    Metrics with fewer than ``min_n`` values on a side are left out.
    """
    if not sides:
        return {}
    cols = [
        np.array([getattr(s[k], f) for s in sides], dtype=np.float64)
        for k in (0, 1)
        for f in ("mean", "sd", "n", "n_eff")
    ]
    diff, lo, hi = _welch_arrays(cols[:4], cols[4:], level)
    out: dict[str, Asymmetry] = {}
    for j, (metric, (left, right)) in enumerate(zip(metrics, sides, strict=True)):
        if left.n < min_n or right.n < min_n:
            continue
        out[metric] = Asymmetry(
            metric=metric,
            t_start_s=float(t_start_s),
            t_end_s=float(t_end_s),
            n_left=left.n,
            n_right=right.n,
            left_mean=left.mean,
            right_mean=right.mean,
            left_sd=left.sd,
            right_sd=right.sd,
            diff=float(diff[j]),
            diff_ci_low=float(lo[j]),
            diff_ci_high=float(hi[j]),
            symmetry_index_pct=symmetry_index_pct(left.mean, right.mean),
            level=level,
        )
    return out


def contact_time_balance_pct(a: Asymmetry) -> tuple[float, float, float]:
    """Left share of ground contact time, ``100 L / (L + R)`` in %, with an approximate interval.

    ``a`` is the ``contact_time_s`` asymmetry. The balance is ``50 + 50 (L - R) / (L + R)``; its interval
    maps the difference interval through the same formula with ``L + R`` taken as known (its error is of
    second order). Garmin-style "normal" is 49.3-50.7 %. Returns ``(balance, low, high)``.
    """
    total = a.left_mean + a.right_mean
    if not math.isfinite(total) or total <= 0:
        return math.nan, math.nan, math.nan
    return (
        100.0 * a.left_mean / total,
        50.0 + 50.0 * a.diff_ci_low / total,
        50.0 + 50.0 * a.diff_ci_high / total,
    )


def breaks_sequence(step: Step) -> bool:
    """The step ends the step sequence: a gap step without a next initial contact (the open step at a
    restart of the analysis). A gap step with its step time is one over a short loss the pipeline bridged:
    the sequence, and the alternation of sides, ran on across it."""
    return step.gap and not math.isfinite(step.step_time_s)


Gait = Literal["running", "walking"]

GAIT_MIN_STEPS = 6
"""A run of fewer steps of one gait inside a bout takes the gait around it (see :func:`gait_phases`)."""

_T = TypeVar("_T")


def _gait_rule(gait: Gait | None, held: list[_T], item: _T, g: Gait | None) -> tuple[Gait | None, list[_T],
                                                                                      list[_T], bool]:
    """One usable step (``item``, of gait ``g``) through the windows' gait rule: the first step sets the
    gait; a step of the other gait is held until a step of the windows' gait comes (then the held steps
    enter with it) or :data:`GAIT_MIN_STEPS` of them are held (then the gait changes and they enter).

    Returns the gait and the held steps after it, the steps that enter now (none while held) and whether
    the gait changed (the windows start again)."""
    if gait is None:
        return g, [], [item], False
    if g != gait:
        held = [*held, item]
        if len(held) < GAIT_MIN_STEPS:
            return gait, held, [], False
        return g, [], held, True
    return gait, [], [*held, item], False


def step_gait(step: Step) -> Gait | None:
    """The gait of one step from its record: a walking step has no flight (``flight_time_s`` is 0, with
    double support), a running step has one (NaN when its final contact was not found); None for a step
    flagged ``gap``."""
    if step.gap:
        return None
    return "walking" if step.flight_time_s == 0.0 else "running"


def gait_stretches(steps: Sequence[Step], params: AsymmetryParams | None = None) -> list[tuple[Gait, list[int]]]:
    """The stretches of one gait, in time order: ``(gait, step indices)`` of consecutive steps of a bout (no
    pause longer than ``max_step_interval_s``) with the same gait, stray steps put right. Within a bout, a
    run of fewer than :data:`GAIT_MIN_STEPS` steps of one gait takes the gait of the run before it in the
    bout, or after it at the start of a bout, or the bout's commoner gait when the bout holds no longer run.
    The steps out of standing, and a slow jog's steps whose flight was too short to see, so stay with the
    bout they belong to. Gap steps are in no stretch (and do not split one).
    """
    p = params if params is not None else AsymmetryParams()
    return _gait_stretches(StepTable(steps), p)


def _gait_stretches(tab: StepTable, p: AsymmetryParams) -> list[tuple[Gait, list[int]]]:
    """:func:`gait_stretches` of the steps of a table: the bouts and the runs of one gait in them found on
    arrays, the runs then put right one by one."""
    idx = np.flatnonzero(~tab.gap)  # gap steps are in no bout
    if not idx.size:
        return []
    sub = tab.take(idx)
    walking = sub.walking()
    # a bout starts at the first step, and where _new_bout against the latest finite contact before (none
    # of these steps breaks the sequence)
    new = sub.new_bout(p)
    new[0] = True
    first = np.flatnonzero(new | np.concatenate(([True], walking[1:] != walking[:-1])))  # of each run
    stop = np.append(first[1:], idx.size)
    run_gait: list[Gait] = np.where(walking[first], "walking", "running").tolist()
    run_len = (stop - first).tolist()
    bout_runs = np.flatnonzero(new[first]).tolist()  # the first run of each bout
    out: list[tuple[Gait, list[int]]] = []
    for r0, r1 in zip(bout_runs, [*bout_runs[1:], len(run_len)], strict=True):
        gaits, lens = run_gait[r0:r1], run_len[r0:r1]
        n_run = sum(n for g, n in zip(gaits, lens, strict=True) if g == "running")
        fill: Gait = "running" if 2 * n_run >= sum(lens) else "walking"  # the commoner, without a long run
        # the gait each run takes: its own if long, else the last long run's before it, else the first
        # long run's after it (one backward pass for those)
        after: list[Gait | None] = [None] * len(lens)
        nxt: Gait | None = None
        for j in range(len(lens) - 1, -1, -1):
            after[j] = nxt
            if lens[j] >= GAIT_MIN_STEPS:
                nxt = gaits[j]
        prev: Gait | None = None
        stretches: list[tuple[Gait, list[int]]] = []
        for j, (g, n) in enumerate(zip(gaits, lens, strict=True)):
            if n >= GAIT_MIN_STEPS:
                prev = g
                gait = g
            else:
                gait = prev or after[j] or fill  # (gaits are non-empty strings)
            cells = idx[first[r0 + j] : stop[r0 + j]].tolist()
            if stretches and stretches[-1][0] == gait:
                stretches[-1][1].extend(cells)
            else:
                stretches.append((gait, cells))
        out.extend(stretches)
    return out


def steps_by_gait(steps: Sequence[Step], stretches: Sequence[tuple[Gait, list[int]]]) -> dict[Gait, list[Step]]:
    """The steps of each gait of :func:`gait_stretches`, in time order; running first."""
    out: dict[Gait, list[Step]] = {}
    for gait, idx in sorted(stretches, key=lambda st: st[0] != "running"):  # (stable: the stretches' order)
        out.setdefault(gait, []).extend(steps[i] for i in idx)
    return out


def main_gait(by_gait: Mapping[Gait, Sequence[Step]], params: AsymmetryParams | None = None) -> Gait | None:
    """The session's gait: the one with more usable steps, then more steps, running on a tie; None without
    steps."""
    p = params if params is not None else AsymmetryParams()
    return max(by_gait, key=lambda g: (sum(1 for s in by_gait[g] if step_is_usable(s, p)), len(by_gait[g])),
               default=None)


def session_gait(steps: Sequence[Step], params: AsymmetryParams | None = None) -> Gait | None:
    """:func:`main_gait` of a list of steps."""
    return main_gait(steps_by_gait(steps, gait_stretches(steps, params)), params)


def gait_phases(steps: Sequence[Step], params: AsymmetryParams | None = None) -> list[Gait | None]:
    """The gait of every step as :func:`gait_stretches` puts it (None for gap steps)."""
    out: list[Gait | None] = [None] * len(steps)
    for gait, idx in gait_stretches(steps, params):
        for i in idx:
            out[i] = gait
    return out


def _new_bout(last_ic_s: float, t_ic_s: float, params: AsymmetryParams) -> bool:
    """A step at ``t_ic_s`` after one at ``last_ic_s`` starts a new bout: a pause longer than
    ``max_step_interval_s`` (the runner stopped), or time running back; never when either time is unknown."""
    if not (math.isfinite(last_ic_s) and math.isfinite(t_ic_s)):
        return False
    return t_ic_s - last_ic_s > params.max_step_interval_s or t_ic_s < last_ic_s


def step_is_usable(step: Step, params: AsymmetryParams) -> bool:
    """A step enters the asymmetry windows: no gap, known side, laterality confident enough."""
    return (
        not step.gap
        and step.side in ("L", "R")
        and math.isfinite(step.t_ic_s)
        and step.laterality_confidence >= params.min_laterality_confidence
    )


def step_end_s(step: Step) -> float:
    """End of a step (its next initial contact), s; its initial contact when the step time is unknown."""
    end = step.t_ic_s + step.step_time_s
    return end if math.isfinite(end) else step.t_ic_s


class StepTable(Sequence[Step]):
    """A list of steps that also gives their fields as arrays, each read from the records once (with
    ``np.fromiter``, when first asked for), not once per step and per use.

    The functions here that read many steps take one in place of the list (:func:`compare_gaits`,
    :meth:`AsymmetryMonitor.update_columns`): one table serves an analysis that reads the same steps in
    several ways. The rules of :func:`breaks_sequence`, :func:`step_is_usable`, :func:`step_end_s`,
    :func:`step_gait` and :func:`_new_bout` are applied to whole arrays, element for element with the same
    comparisons and the same float arithmetic (tested against the per-step functions).

    Parameters
    ----------
    steps : sequence of Step
    """

    def __init__(self, steps: Sequence[Step], fields: dict[str, np.ndarray] | None = None) -> None:
        self.steps = steps
        self.n = len(steps)
        self._fields: dict[str, np.ndarray] = {} if fields is None else fields

    @classmethod
    def of(cls, steps: Sequence[Step]) -> StepTable:
        """``steps`` if a table already, else the table of ``list(steps)``."""
        return steps if isinstance(steps, StepTable) else cls(list(steps))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        return self.steps[i]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def take(self, idx: Sequence[int] | np.ndarray) -> StepTable:
        """The table of the steps ``idx`` (the fields read so far taken along)."""
        at = np.asarray(idx, dtype=np.int64)
        return StepTable([self.steps[i] for i in at.tolist()], {k: v[at] for k, v in self._fields.items()})

    def field(self, name: str, dtype: type = np.float64) -> np.ndarray:
        """The ``Step`` field ``name`` of every step as ``dtype``, shape (n,)."""
        out = self._fields.get(name)
        if out is None or out.dtype != dtype:  # (asked for as another type: read again)
            out = self._fields[name] = np.fromiter(map(attrgetter(name), self.steps), dtype, self.n)
        return out

    @property
    def t_ic(self) -> np.ndarray:
        return self.field("t_ic_s")

    @property
    def gap(self) -> np.ndarray:
        return self.field("gap", bool)

    @property
    def left(self) -> np.ndarray:
        """``side == "L"`` of every step."""
        return self._side("L")

    @property
    def right(self) -> np.ndarray:
        """``side == "R"`` of every step."""
        return self._side("R")

    def _side(self, side: str) -> np.ndarray:
        key = "side " + side  # (kept with the fields; no Step field has a space in its name)
        if key not in self._fields:
            sides = list(map(attrgetter("side"), self.steps))
            for s in ("L", "R"):
                self._fields["side " + s] = np.fromiter((x == s for x in sides), bool, self.n)
        return self._fields[key]

    def values(self, metrics: Sequence[str]) -> np.ndarray:
        """The metrics of every step, shape (n, len(metrics)), C order."""
        out = np.empty((self.n, len(metrics)))
        for j, m in enumerate(metrics):
            out[:, j] = self.field(m)
        return out

    def breaks(self) -> np.ndarray:
        """:func:`breaks_sequence` of every step."""
        return self.gap & ~np.isfinite(self.field("step_time_s"))

    def usable(self, p: AsymmetryParams) -> np.ndarray:
        """:func:`step_is_usable` of every step."""
        lat = self.field("laterality_confidence")
        return ~self.gap & (self.left | self.right) & np.isfinite(self.t_ic) & (lat >= p.min_laterality_confidence)

    def t_end(self) -> np.ndarray:
        """:func:`step_end_s` of every step, s."""
        end = self.t_ic + self.field("step_time_s")
        return np.where(np.isfinite(end), end, self.t_ic)

    def walking(self) -> np.ndarray:
        """:func:`step_gait` is "walking" (no flight); meaningful for steps without a gap."""
        return self.field("flight_time_s") == 0.0

    def new_bout(self, p: AsymmetryParams) -> np.ndarray:
        """Per step, :func:`_new_bout` against the last initial contact the windows keep before it
        (:class:`AsymmetryMonitor`): the latest finite one since the last step that breaks the sequence."""
        at = self.last_ic_at()[:-1]
        return _new_bouts(np.where(at >= 0, self.t_ic[np.maximum(at, 0)], np.nan), self.t_ic, p)

    def last_ic_at(self) -> np.ndarray:
        """The step whose initial contact is the monitor's last one before each step and after the last,
        shape (n + 1,), int; -1 for none (at the start, and after a step that breaks the sequence)."""
        out = np.full(self.n + 1, -1, dtype=np.int64)
        if not self.n:
            return out
        brk = self.breaks()
        # the latest step before each that either sets the last contact (a finite one) or forgets it
        at = np.maximum.accumulate(np.where(brk | np.isfinite(self.t_ic), np.arange(self.n), -1))
        ok = at >= 0
        ok[ok] = ~brk[at[ok]]
        out[1:] = np.where(ok, at, -1)
        return out


def _new_bouts(last_ic_s: np.ndarray, t_ic_s: np.ndarray, params: AsymmetryParams) -> np.ndarray:
    """:func:`_new_bout` element for element."""
    with np.errstate(invalid="ignore"):
        later = (t_ic_s - last_ic_s > params.max_step_interval_s) | (t_ic_s < last_ic_s)
    return np.isfinite(last_ic_s) & np.isfinite(t_ic_s) & later


class AsymmetryMonitor:
    """Streaming left/right asymmetry over rolling per-side windows of steps.

    Parameters
    ----------
    params : AsymmetryParams, optional
        Windows and statistics (defaults documented there).

    Attributes
    ----------
    latest_ : dict of str to Asymmetry
        The current asymmetry per metric (only metrics with enough steps on both sides). Emptied when the
        windows reset where the step sequence breaks (a restart), at a bout boundary or when the gait changes.
    n_resets_ : int
        How often the windows restarted (restarts of the analysis, bout boundaries and changes of gait).
    gait_ : {"running", "walking"} or None
        The gait of the steps in the windows. Walking and running are not compared in one window: steps of
        the other gait are held out until :data:`GAIT_MIN_STEPS` of them in a row (then the windows restart
        with them: the gait changed) or a step of the windows' gait (then they join the windows: a stray
        run, such as a slow jog's steps whose flight was too short to see).

    Examples
    --------
    >>> mon = AsymmetryMonitor()
    >>> for chunk in step_chunks:            # doctest: +SKIP
    ...     current = mon.update(chunk)      # list of Asymmetry, computed once per call
    """

    def __init__(self, params: AsymmetryParams | None = None) -> None:
        self.params = params if params is not None else AsymmetryParams()
        self.reset()

    def reset(self) -> None:
        """Forget all steps (a new bout or session)."""
        n = self.params.window_steps
        self._win: dict[str, deque[tuple[float, float, np.ndarray]]] = {
            "L": deque(maxlen=n),
            "R": deque(maxlen=n),
        }
        self._last_ic_s = math.nan
        self.latest_: dict[str, Asymmetry] = {}
        self.n_resets_ = 0
        self.gait_: Gait | None = None
        self._held: list[Step] = []

    def _restart(self) -> None:
        self._win["L"].clear()
        self._win["R"].clear()
        self.latest_ = {}
        self.n_resets_ += 1

    def _forget_gait(self) -> None:
        self.gait_ = None
        self._held = []

    def _push(self, step: Step) -> bool:
        """Add one step to the windows; returns True if the windows changed."""
        p = self.params
        if breaks_sequence(step):
            if self._win["L"] or self._win["R"]:
                self._restart()
            self._last_ic_s = math.nan
            self._forget_gait()
            return True
        if _new_bout(self._last_ic_s, step.t_ic_s, p):
            self._restart()
            self._forget_gait()
        if math.isfinite(step.t_ic_s):
            self._last_ic_s = step.t_ic_s
        if not step_is_usable(step, p):
            return False
        # (a stray run of the other gait joins the windows with the next step of the windows' gait)
        self.gait_, self._held, batch, changed = _gait_rule(self.gait_, self._held, step, step_gait(step))
        if not batch:
            return False
        if changed:
            self._restart()  # the gait changed: the windows start again with its steps
        for s_ in batch:
            self._append(s_)
        return True

    def _entry(self, step: Step) -> tuple[float, float, np.ndarray]:
        """What a window keeps of a step: initial contact and end (s), the metrics."""
        vals = np.array([float(getattr(step, m)) for m in self.params.metrics], dtype=np.float64)
        return step.t_ic_s, step_end_s(step), vals

    def _append(self, step: Step) -> None:
        p = self.params
        self._win[step.side].append(self._entry(step))
        if p.window_s is not None:
            t_min = step.t_ic_s - p.window_s
            for side in ("L", "R"):
                w = self._win[side]
                while w and w[0][0] < t_min:
                    w.popleft()

    def _compute(self) -> dict[str, Asymmetry]:
        p = self.params
        wl, wr = self._win["L"], self._win["R"]
        if len(wl) < p.min_steps_per_side or len(wr) < p.min_steps_per_side:
            return {}
        vl = np.array([v for _, _, v in wl])
        vr = np.array([v for _, _, v in wr])
        t0 = min(wl[0][0], wr[0][0])
        t1 = max(wl[-1][1], wr[-1][1])
        sides = side_stats_columns(
            vl, vr, autocorrelation=p.autocorrelation, max_autocorrelation=p.max_autocorrelation
        )
        return make_asymmetries(p.metrics, t0, t1, sides, p.level, p.min_steps_per_side)

    def drop_since(self, t_s: float) -> list[Asymmetry]:
        """Take the steps whose initial contact is at ``t_s`` or later out of the windows (and out of the steps
        of the other gait held back), as if they had not come; return the current asymmetries. For steps
        found wrong after they came (a sensor that turned on the body some seconds before that showed).
        The windows are not refilled with older steps."""
        for side in ("L", "R"):
            kept = [e for e in self._win[side] if not e[0] >= t_s]
            if len(kept) < len(self._win[side]):
                self._win[side] = deque(kept, maxlen=self.params.window_steps)
        self._held = [s for s in self._held if not s.t_ic_s >= t_s]
        self.latest_ = self._compute()
        return list(self.latest_.values())

    def update(self, steps: Iterable[Step], t_s: float | None = None) -> list[Asymmetry]:
        """Take new steps (time order) and return the current asymmetries, one per metric with enough data.

        The statistics are computed once per call, after all steps of the call are in. An empty list means
        not enough valid steps since the last reset.

        Parameters
        ----------
        steps : iterable of Step
            New steps, possibly none.
        t_s : float, optional
            Current session time, s. When given and the last initial contact is more than
            ``max_step_interval_s`` old (the runner stopped), the windows restart now rather than at the next
            step, so that a live display does not keep showing the asymmetry of a finished bout.
        """
        changed = False
        for step in steps:
            changed |= self._push(step)
        if changed:
            self.latest_ = self._compute()
        if (
            t_s is not None
            and math.isfinite(self._last_ic_s)
            and t_s - self._last_ic_s > self.params.max_step_interval_s
        ):
            if self._win["L"] or self._win["R"]:
                self._restart()
            self._last_ic_s = math.nan
            self._forget_gait()
        return list(self.latest_.values())

    def update_columns(self, steps: Sequence[Step]) -> RollingAsymmetry:
        """:meth:`update` with each of ``steps`` in turn, the asymmetry after each returned as columns
        (:class:`RollingAsymmetry`: entry ``i`` equals what ``update([steps[i]])`` returns, bit for bit).

        The window bookkeeping (gaps, bout boundaries, skipped steps, gait, time limit) runs step by step
        on step indices; the statistics of all windows are then computed at once with the same arithmetic.
        Afterwards the monitor's windows and state are those of the step-by-step calls. Needs at least two
        metrics and a monitor that holds no steps (new, or emptied by a restart). ``steps`` may be a
        :class:`StepTable` (its fields then read once for all its uses).
        """
        p = self.params
        if len(p.metrics) < 2:
            raise ValueError("the column form needs at least two metrics; use update or rolling_asymmetry")
        if self._win["L"] or self._win["R"] or math.isfinite(self._last_ic_s) or self.gait_ or self._held:
            raise ValueError("update_columns needs a monitor that holds no steps; use update")
        tab = StepTable.of(steps)
        steps = tab.steps
        win = _windows(tab, p)
        rolling = _rolling_columns(tab, p, win)
        if steps:
            for side, name in enumerate(("L", "R")):
                self._win[name].extend(self._entry(steps[j]) for j in win.seq[side][win.lo[side] :])
            last = int(tab.last_ic_at()[-1])
            self._last_ic_s = steps[last].t_ic_s if last >= 0 else math.nan
            self.latest_ = {a.metric: a for a in rolling[-1]}
            self.n_resets_ += win.n_resets
            self.gait_ = win.gait
            self._held = [steps[j] for j in win.held]
        return rolling


def rolling_asymmetry_reference(
    steps: Sequence[Step], params: AsymmetryParams | None = None
) -> list[list[Asymmetry]]:
    """The streaming monitor fed one step at a time: ``out[i]`` is the asymmetry after ``steps[i]``.

    The readable reference of :func:`rolling_asymmetry` (which gives the same records, bit for bit).
    """
    mon = AsymmetryMonitor(params)
    return [mon.update([s]) for s in steps]


_ASYMMETRY_FIELDS = tuple(f.name for f in fields(Asymmetry))

_BATCH_ROWS = 1024
"""Windows whose sums are computed together in :func:`_side_sums` (bounds memory)."""


@dataclass(eq=False)
class _Windows:
    """The windows :class:`AsymmetryMonitor` holds after each of a list of steps, on step indices.

    Attributes
    ----------
    seq : (list of int, list of int)
        The left and the right steps that entered the windows, in order; each side's window is a run of its
        list.
    slot : ndarray of int, shape (K,)
        Per step: the window pair whose asymmetry is current after it, -1 for none.
    pairs : ndarray of int, shape (P, 4)
        Per window pair: start and length of the left window, start and length of the right window.
    lo : (int, int)
        Start of each side's window after the last step.
    n_resets : int
        Restarts of the windows (as ``AsymmetryMonitor.n_resets_`` counts them).
    gait : {"running", "walking"} or None
        ``AsymmetryMonitor.gait_`` after the last step.
    held : list of int
        The steps of another gait held out after the last step (``AsymmetryMonitor._held``).
    """

    seq: tuple[list[int], list[int]]
    slot: np.ndarray
    pairs: np.ndarray
    lo: tuple[int, int]
    n_resets: int
    gait: Gait | None
    held: list[int]


def _windows(tab: StepTable, p: AsymmetryParams) -> _Windows:
    """:meth:`AsymmetryMonitor._push` for every step in turn, on step indices, from an empty monitor.

    The per-step tests (breaks, bout boundaries, usable, gait) are made on arrays first; the loop visits
    only the steps where one of them holds.
    """
    k = tab.n
    brk = tab.breaks()
    new_bout = tab.new_bout(p) & ~brk
    use = tab.usable(p)
    gait_of: list[Gait] = np.where(tab.walking(), "walking", "running").tolist()
    side_of = tab.right.astype(np.int64).tolist()  # 0 = left, 1 = right (usable steps have one of them)
    t_ic = tab.t_ic.tolist()
    visited = brk | new_bout | use
    visit = np.flatnonzero(visited)
    brk_l, new_l, use_l = brk[visit].tolist(), new_bout[visit].tolist(), use[visit].tolist()
    w_max, n_min, window_s = p.window_steps, p.min_steps_per_side, p.window_s
    seq: tuple[list[int], list[int]] = ([], [])
    lo = [0, 0]
    pairs: list[tuple[int, int, int, int]] = []
    slots: list[int] = []  # per visited step
    latest = -1
    n_resets = 0
    gait: Gait | None = None
    held: list[int] = []
    for i, is_break, is_new_bout, usable in zip(visit.tolist(), brk_l, new_l, use_l, strict=True):
        if is_break:
            if len(seq[0]) > lo[0] or len(seq[1]) > lo[1]:
                lo = [len(seq[0]), len(seq[1])]
                n_resets += 1
            gait, held, latest = None, [], -1
            slots.append(-1)
            continue
        if is_new_bout:
            lo = [len(seq[0]), len(seq[1])]
            n_resets += 1
            gait, held, latest = None, [], -1
        if not usable:
            slots.append(latest)
            continue
        gait, held, batch, changed = _gait_rule(gait, held, i, gait_of[i])
        if not batch:
            slots.append(latest)
            continue
        if changed:
            lo = [len(seq[0]), len(seq[1])]  # the gait changed: the windows start again with its steps
            n_resets += 1
        for j in batch:
            side = side_of[j]
            q = seq[side]
            q.append(j)
            lo[side] = max(lo[side], len(q) - w_max)
            if window_s is not None:
                t_min = t_ic[j] - window_s
                for sd in (0, 1):
                    while lo[sd] < len(seq[sd]) and t_ic[seq[sd][lo[sd]]] < t_min:
                        lo[sd] += 1
        n_l, n_r = len(seq[0]) - lo[0], len(seq[1]) - lo[1]
        if n_l < n_min or n_r < n_min:
            latest = -1
        else:
            latest = len(pairs)
            pairs.append((lo[0], n_l, lo[1], n_r))
        slots.append(latest)
    # the steps not visited change nothing: they keep the slot of the step before them
    slot = np.full(k, -1, dtype=np.int64)
    if visit.size:
        before = np.maximum.accumulate(np.where(visited, np.arange(k), -1))
        at_visit = np.full(k, -1, dtype=np.int64)
        at_visit[visit] = slots
        slot = np.where(before >= 0, at_visit[np.maximum(before, 0)], -1)
    return _Windows(
        seq=seq,
        slot=slot,
        pairs=np.array(pairs, dtype=np.int64).reshape(-1, 4),
        lo=(lo[0], lo[1]),
        n_resets=n_resets,
        gait=gait,
        held=held,
    )


def _window_sums(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`_column_sums` of many windows at once, summed in the same (sequential) order.

    ``x`` (W, B, M) holds B windows of up to W steps, each padded with NaN rows after its last step (the
    padding is missing values, which every sum leaves out). Returns count, mean, sum of squares and lag-1
    cross sum, each (B, M). ``np.sum`` over the first axis of a C-ordered (n, M) array with M >= 2 adds
    the rows one after the other starting from 0; the loops below add the same terms in the same order,
    and exact zeros for the missing values, which leave a sum unchanged (as does a lag pair with a missing
    value, which adds 0 * d = +-0.0 to a sum that starts at +0.0 and is never -0.0).
    """
    ok = np.isfinite(x)
    n = ok.sum(axis=0)
    xz = np.where(ok, x, 0.0)
    total = np.zeros(x.shape[1:])
    for w in range(x.shape[0]):
        total += xz[w]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    d = np.subtract(x, mean, out=xz)
    d[~ok] = 0.0
    ss = np.zeros(x.shape[1:])
    lag = np.zeros(x.shape[1:])
    for w in range(x.shape[0]):
        ss += d[w] * d[w]
        if w + 1 < x.shape[0]:
            lag += d[w] * d[w + 1]
    return n, mean, ss, lag


def _side_sums(vals: np.ndarray, lo: np.ndarray, n: np.ndarray, w_max: int) -> tuple[np.ndarray, ...]:
    """:func:`_window_sums` of the windows ``vals[lo[b] : lo[b] + n[b]]`` (one side's steps in order,
    (S, M)), in blocks of :data:`_BATCH_ROWS` windows; also the sample SD. Each (B, M)."""
    parts = []
    col = np.arange(w_max)[:, None]
    padded = np.vstack([vals, np.full((1, vals.shape[1]), np.nan)])  # the row past every window's end
    for b0 in range(0, lo.shape[0], _BATCH_ROWS):
        lo_b, n_b = lo[b0 : b0 + _BATCH_ROWS], n[b0 : b0 + _BATCH_ROWS]
        rows = np.where(col < n_b, lo_b + col, vals.shape[0])  # (W, B): row w of every window together
        parts.append(_window_sums(np.take(padded, rows, axis=0)))
    m = vals.shape[1]
    if not parts:
        return np.zeros((0, m), np.int64), *(np.zeros((0, m)) for _ in range(4))
    cnt, mean, ss, lag = (np.concatenate(c) for c in zip(*parts, strict=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.where(cnt > 1, np.sqrt(ss / (cnt - 1)), np.nan)
    return cnt, mean, ss, lag, sd


_COLUMNS = ("nl", "nr", "ml", "mr", "sdl", "sdr", "diff", "lo", "hi", "si")
"""Per (window pair, metric) columns of :class:`RollingAsymmetry`, in ``Asymmetry`` field order after
``metric``, ``t_start_s``, ``t_end_s`` (``level`` last)."""


def _rolling_columns(tab: StepTable, p: AsymmetryParams, win: _Windows) -> RollingAsymmetry:
    """The statistics of the window pairs of ``win`` as a :class:`RollingAsymmetry`.

    Element for element the arithmetic of ``side_stats_columns`` and ``make_asymmetries``: each side's
    sums come from that side's window alone, so they are computed once per distinct window of a side (a new
    step changes one side's window) and then paired.
    """
    vals = tab.values(p.metrics)
    t_ic, t_end = tab.t_ic, tab.t_end()
    w_max, m = p.window_steps, len(p.metrics)
    per_side = []
    for side, (c_lo, c_n) in enumerate(((0, 1), (2, 3))):
        seq = np.array(win.seq[side], dtype=np.int64)
        lo, n = win.pairs[:, c_lo], win.pairs[:, c_n]
        uniq, inv = np.unique(lo * (w_max + 1) + n, return_inverse=True)
        u_lo, u_n = uniq // (w_max + 1), uniq % (w_max + 1)
        sums = _side_sums(vals[seq], u_lo, u_n, w_max)
        first, last = seq[u_lo], seq[u_lo + u_n - 1]
        per_side.append([c[inv] for c in sums] + [t_ic[first][inv], t_end[last][inv]])
    (nl, ml, ssl, lagl, sdl, t0l, t1l), (nr, mr, ssr, lagr, sdr, t0r, t1r) = per_side
    rho = _pooled_rho(nl, nr, ssl + ssr, lagl + lagr, p.autocorrelation, p.max_autocorrelation)
    neff = []
    for n in (nl, nr):
        with np.errstate(invalid="ignore", divide="ignore"):
            neff.append(np.where(n > 0, np.maximum(n * (1.0 - rho) / (1.0 + rho), np.minimum(n, 2.0)), 0.0))
    diff, df, se2, valid = _welch_parts(
        [ml, sdl, nl.astype(np.float64), neff[0]], [mr, sdr, nr.astype(np.float64), neff[1]]
    )
    with np.errstate(invalid="ignore"):
        mid = 0.5 * (ml + mr)
        si = np.where(np.isfinite(mid) & ~(np.abs(mid) < 1e-12), 100.0 * (ml - mr) / mid, np.nan)
    keep = (nl >= p.min_steps_per_side) & (nr >= p.min_steps_per_side)
    columns = {
        "t0": np.minimum(t0l, t0r), "t1": np.maximum(t1l, t1r),
        "nl": nl, "nr": nr, "ml": ml, "mr": mr, "sdl": sdl, "sdr": sdr, "diff": diff, "si": si,
    }  # fmt: skip
    return RollingAsymmetry(p.metrics, p.level, win.slot, keep.reshape(-1, m), columns, (df, se2, valid))


def _make_records(metrics: Sequence[str], level: float, t0: float, t1: float, cols: list[list[float]]) -> list[Asymmetry]:
    """Asymmetry records of one window pair from its kept columns (metric names and 10 value lists).

    Built without the frozen dataclass' ``__init__`` (one ``object.__setattr__`` per field costs about
    twice as much): the same field values in the same ``__dict__``, so the records equal constructed
    ones (tested)."""
    new, names = object.__new__, _ASYMMETRY_FIELDS
    recs = []
    for j, metric in enumerate(metrics):
        a = new(Asymmetry)
        a.__dict__.update(
            zip(names, (metric, t0, t1, *(c[j] for c in cols), level), strict=True)
        )
        recs.append(a)
    return recs


class RollingAsymmetry(Sequence[list[Asymmetry]]):
    """The rolling asymmetry after each step as columns; entry ``i`` (a list of :class:`Asymmetry`, as
    :class:`AsymmetryMonitor` returns after ``steps[i]``) is built when read.

    An hour of running has some 10,000 steps and 90,000 records; consumers that need numbers (the alerts,
    plots) read the arrays instead. Consecutive entries share their records where the windows did not
    change (as the monitor's do). The difference intervals (a t quantile each, the costly part) are
    computed when first read: all of them by :attr:`columns`, or those a reader needs by :meth:`bounds`.

    Attributes
    ----------
    metrics : tuple of str
        Metric of each column.
    slot : ndarray, shape (K,), int
        Per step: the window pair whose records are current after it, -1 for none.
    keep : ndarray, shape (P, M), bool
        Window pair ``p`` reports metric ``m`` (both sides hold ``min_steps_per_side`` finite values).
    columns : dict of str to ndarray, shape (P, M)
        ``nl nr ml mr sdl sdr diff lo hi si`` (counts, means, SDs, difference and its interval, symmetry
        index) per window pair and metric, and ``t0``, ``t1`` (P,): the pair's start and end times, s.
    level : float
        Confidence level of the intervals.
    """

    def __init__(
        self,
        metrics: Sequence[str],
        level: float,
        slot: np.ndarray,
        keep: np.ndarray,
        columns: dict[str, np.ndarray],
        welch: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        self.metrics = tuple(metrics)
        self.level = float(level)
        self.slot = slot
        self.keep = keep
        self._columns = columns  # all but "lo" and "hi" until they are read
        self._welch = welch  # degrees of freedom, squared standard error, has an interval: (P, M) each
        self._cache: dict[int, list[Asymmetry]] = {}

    @property
    def columns(self) -> dict[str, np.ndarray]:
        """The columns (see the class docstring); the intervals computed on first read."""
        if "lo" not in self._columns:
            lo, hi = self.bounds(None)
            self._columns["lo"], self._columns["hi"] = lo, hi
        return self._columns

    def column(self, name: str) -> np.ndarray:
        """``columns[name]``, without computing the intervals unless ``name`` is "lo" or "hi"."""
        return self.columns[name] if name in ("lo", "hi") else self._columns[name]

    def bounds(self, where: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The difference interval ``(lo, hi)``, each (P, M), at the entries ``where`` (bool, (P, M); None
        for all), NaN elsewhere: the same numbers as ``columns["lo"]``, ``columns["hi"]`` there."""
        if where is None:
            return self._bounds_at(...)
        shape = self._columns["diff"].shape
        lo = np.full(shape, np.nan)
        hi = np.full(shape, np.nan)
        lo[where], hi[where] = self._bounds_at(where)
        return lo, hi

    def _bounds_at(self, idx: Any) -> tuple[np.ndarray, np.ndarray]:
        """The difference interval at the entries ``idx`` (any numpy index of the (P, M) columns): the
        computed columns when there are, the Welch bounds of just those entries otherwise."""
        c = self._columns
        if "lo" in c:
            return c["lo"][idx], c["hi"][idx]
        df, se2, valid = (x[idx] for x in self._welch)
        return _welch_bounds(c["diff"][idx], df, se2, valid, self.level)

    def __len__(self) -> int:
        return int(self.slot.shape[0])

    def pair_records(self, j: int) -> list[Asymmetry]:
        """The records of window pair ``j`` (built once, then shared)."""
        recs = self._cache.get(j)
        if recs is None:
            kept = np.flatnonzero(self.keep[j])
            c = self._columns
            lo, hi = self._bounds_at((j, kept))
            row = {"lo": lo, "hi": hi}
            cols = [(row[name] if name in row else c[name][j, kept]).tolist() for name in _COLUMNS]
            recs = _make_records([self.metrics[m] for m in kept.tolist()], self.level, float(c["t0"][j]), float(c["t1"][j]), cols)
            self._cache[j] = recs
        return recs

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        j = int(self.slot[i])
        return list(self.pair_records(j)) if j >= 0 else []

    def __iter__(self):  # type: ignore[no-untyped-def]
        if self.slot.size == 0:
            return
        # all records at once: the columns of every kept (pair, metric) as lists (fewer numpy calls)
        c = self.columns
        keep = self.keep
        kept = np.flatnonzero(keep.ravel())
        m = keep.shape[1]
        pair_of = kept // m
        names = np.asarray(self.metrics, dtype=object)[kept % m].tolist()
        t0, t1 = c["t0"][pair_of].tolist(), c["t1"][pair_of].tolist()
        cols = [c[name].ravel()[kept].tolist() for name in _COLUMNS]
        new, fnames, level = object.__new__, _ASYMMETRY_FIELDS, self.level
        recs = []
        for values in zip(names, t0, t1, *cols, strict=True):
            a = new(Asymmetry)
            a.__dict__.update(zip(fnames, (*values, level), strict=True))
            recs.append(a)
        ends = np.cumsum(keep.sum(axis=1)).tolist()
        per_pair = [recs[e0:e1] for e0, e1 in zip([0, *ends], ends, strict=False)]
        for j in self.slot.tolist():
            yield list(per_pair[j]) if j >= 0 else []

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RollingAsymmetry | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def rolling_asymmetry(steps: Sequence[Step], params: AsymmetryParams | None = None) -> list[list[Asymmetry]]:
    """The streaming monitor fed one step at a time: ``out[i]`` is the asymmetry after ``steps[i]``.

    The records of :func:`rolling_asymmetry_columns`, all built (see there)."""
    p = params if params is not None else AsymmetryParams()
    if len(p.metrics) < 2:
        # np.sum over one column adds pairwise, not row by row: keep the monitor's own arithmetic
        return rolling_asymmetry_reference(steps, p)
    return list(rolling_asymmetry_columns(steps, p))


def rolling_asymmetry_columns(steps: Sequence[Step], params: AsymmetryParams | None = None) -> RollingAsymmetry:
    """The streaming monitor fed one step at a time, as columns (:class:`RollingAsymmetry`; entry ``i``
    is the asymmetry after ``steps[i]``). Needs at least two metrics.

    A new monitor's :meth:`AsymmetryMonitor.update_columns`: the window bookkeeping (gaps, bout
    boundaries, skipped steps, time limit) runs step by step as in :meth:`AsymmetryMonitor.update`; the
    statistics of all windows are then computed at once, with the same arithmetic, so the records equal
    :func:`rolling_asymmetry_reference` bit for bit. Consecutive entries share their records where the
    windows did not change, as the monitor's do.
    """
    return AsymmetryMonitor(params).update_columns(steps)


def segment_steps(steps: Sequence[Step], params: AsymmetryParams | None = None) -> list[int]:
    """Bout/segment number of each step: a new segment starts after a step that breaks the sequence
    (:func:`breaks_sequence`) or at a bout boundary.

    Gap steps get -1 (never used).
    """
    p = params if params is not None else AsymmetryParams()
    return _segments(StepTable(steps), p).tolist()


def _segments(tab: StepTable, p: AsymmetryParams) -> np.ndarray:
    """:func:`segment_steps` of the steps of a table, int64."""
    brk = tab.breaks()
    seg = np.cumsum(brk | tab.new_bout(p))
    return np.where(tab.gap, -1, seg)


def session_side_stats(
    steps: Sequence[Step], params: AsymmetryParams | None = None
) -> dict[str, tuple[SideStats, SideStats]]:
    """Per metric, the left and right statistics over all usable steps of a session.

    Autocorrelation pairs stay within one bout (segment); gap and low-laterality steps are left out.
    """
    p = params if params is not None else AsymmetryParams()
    return _side_stats(StepTable(steps), p)


def _side_stats(tab: StepTable, p: AsymmetryParams) -> dict[str, tuple[SideStats, SideStats]]:
    """:func:`session_side_stats` of the steps of a table."""
    segs = _segments(tab, p)
    use = tab.usable(p)
    ml = use & tab.left
    mr = use & tab.right
    vals = tab.values(p.metrics)
    sides = side_stats_columns(
        vals[ml],
        vals[mr],
        left_segments=segs[ml],
        right_segments=segs[mr],
        autocorrelation=p.autocorrelation,
        max_autocorrelation=p.max_autocorrelation,
    )
    return dict(zip(p.metrics, sides, strict=True))


def session_asymmetry(
    steps: Sequence[Step],
    params: AsymmetryParams | None = None,
    side_stats: dict[str, tuple[SideStats, SideStats]] | None = None,
) -> dict[str, Asymmetry]:
    """Whole-session asymmetry per metric (same statistics as the rolling windows, all usable steps).

    Metrics with fewer than ``min_steps_per_side`` finite values on a side are left out. ``side_stats``:
    the result of ``session_side_stats(steps, params)`` when already at hand (not computed again).
    """
    p = params if params is not None else AsymmetryParams()
    return _session_asymmetry(StepTable(steps), p, side_stats)


def _session_asymmetry(
    tab: StepTable, p: AsymmetryParams, side_stats: dict[str, tuple[SideStats, SideStats]] | None = None
) -> dict[str, Asymmetry]:
    """:func:`session_asymmetry` of the steps of a table."""
    use = tab.usable(p)
    if not use.any():
        return {}
    t0 = min(tab.t_ic[use].tolist())
    t1 = max(tab.t_end()[use].tolist())
    st = side_stats if side_stats is not None else _side_stats(tab, p)
    return make_asymmetries(list(st), t0, t1, list(st.values()), p.level, p.min_steps_per_side)


@dataclass(frozen=True, eq=False)
class GaitComparison:
    """The whole-session left/right comparison of the steps of one gait.

    Attributes
    ----------
    gait : {"running", "walking"}
    steps : StepTable
        The steps of the gait (:func:`steps_by_gait`), in time order, with their fields.
    n_usable : int
        How many of them are usable (:func:`step_is_usable`).
    side_stats : dict of str to (SideStats, SideStats)
        :func:`session_side_stats` of ``steps``.
    asymmetry : dict of str to Asymmetry
        :func:`session_asymmetry` of ``steps``.
    """

    gait: Gait
    steps: StepTable
    n_usable: int
    side_stats: dict[str, tuple[SideStats, SideStats]]
    asymmetry: dict[str, Asymmetry]


def compare_gaits(
    steps: Sequence[Step], params: AsymmetryParams | None = None
) -> tuple[list[tuple[Gait, list[int]]], dict[Gait, GaitComparison], Gait | None]:
    """The whole-session comparison of a list of steps per gait, with the steps' fields read once.

    Returns :func:`gait_stretches`; per gait of :func:`steps_by_gait` (running first) its steps, their
    :func:`session_side_stats` and :func:`session_asymmetry`; and :func:`main_gait`: the results of
    those functions, each. ``steps`` may be a :class:`StepTable`.
    """
    p = params if params is not None else AsymmetryParams()
    tab = StepTable.of(steps)
    stretches = _gait_stretches(tab, p)
    use = tab.usable(p)
    out: dict[Gait, GaitComparison] = {}
    for gait in sorted({g for g, _ in stretches}, key=lambda g: g != "running"):
        idx = [i for g, cells in stretches if g == gait for i in cells]
        part = tab.take(idx)
        side_stats = _side_stats(part, p)
        out[gait] = GaitComparison(gait, part, int(use[idx].sum()), side_stats, _session_asymmetry(part, p, side_stats))
    main = max(out, key=lambda g: (out[g].n_usable, len(out[g].steps)), default=None)
    return stretches, out, main
