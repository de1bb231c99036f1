"""Per-step metrics: one :class:`~pelvimon.dsp.records.Step` from the events of a step and its samples.

Definitions (design.md):

* ``step_time_s`` from this IC to the next IC, ``cadence_spm = 60 / step_time_s``;
  ``contact_time_s = t_fc_s - t_ic_s``; ``flight_time_s`` from FC to the next IC (running; 0 walking).
* ``cpd_deg``: during LEFT stance the largest drop of the right side between left IC and left FC relative
  to the obliquity at IC. Obliquity > 0 lifts the left side, so a right-side drop is a rise of obliquity:
  ``max(obl - obl[IC])`` for left stance and ``max(obl[IC] - obl)`` for right stance.
* ranges: peak-to-peak of tilt, obliquity and rotation from IC to the next IC.
* ``vertical_oscillation_cm``: the vertical specific force minus gravity, integrated twice over the step;
  a treadmill step starts and ends at the same height and vertical speed, so the mean acceleration and
  the mean velocity over the step are removed before each integration (drift removal per step).
* ``impact_g``: peak vertical specific force within the first 20 % of the contact (the impact transient
  of running), in g.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..firmware_protocols.batch import G_MPS2
from .events import StepEvents, _step_means
from .records import Side, Step

__all__ = [
    "IMPACT_FRACTION",
    "StepColumns",
    "step_columns",
    "step_metrics",
    "step_metrics_batch",
    "vertical_oscillation_cm",
    "window_means",
]

IMPACT_FRACTION = 0.2
"""Impact window as a fraction of the contact time."""

_NAN = float("nan")


def vertical_oscillation_cm(acc_v_mps2: np.ndarray, rate_hz: float, n_before: int = 0) -> float:
    """Peak-to-peak vertical displacement over one step, cm.

    The vertical force is integrated twice over the stride that ends with the step (the step before it and
    the step), with the mean force and then the mean velocity removed: a stride starts and ends at the same
    height and speed; a single step does so only when the two sides' steps are alike (a limp lands each
    foot at another height and speed). The window is one period: from the IC of the step before up to the
    next IC, that sample excluded (it starts the next stride; with it, the means of a periodic signal come
    out wrong by one sample's worth, which read 2-6 % high at 200 Hz). The peak-to-peak is taken over the
    step's own samples.

    Parameters
    ----------
    acc_v_mps2 : ndarray, shape (N,)
        Vertical specific force (gravity included, up positive) from the IC of the step before (or from the
        step's IC, ``n_before = 0``) up to the next IC, exclusive, m/s².
    rate_hz : float
        Sample rate, Hz.
    n_before : int
        Samples of the step before, at the start of ``acc_v_mps2`` (0: the step alone).
    """
    a = np.asarray(acc_v_mps2, dtype=np.float64)
    if a.shape[0] - n_before < 2:
        return _NAN
    a = a - a.mean()
    v = np.cumsum(a) / rate_hz
    v -= v.mean()
    z = np.cumsum(v) / rate_hz
    return float(np.ptp(z[n_before:]) * 100.0)


def _ptp(x: np.ndarray) -> float:
    if x.size == 0 or not np.all(np.isfinite(x)):
        return _NAN
    return float(np.ptp(x))


def step_metrics(
    ev: StepEvents,
    side: Side,
    confidence: float,
    angles_deg: np.ndarray,
    acc_v_mps2: np.ndarray,
    rate_hz: float,
    gap: bool = False,
    acc_v_before_mps2: np.ndarray | None = None,
    prev_t_ic_s: float = _NAN,
) -> Step:
    """Build the :class:`Step` of one step.

    Parameters
    ----------
    ev : StepEvents
        The step's events; sample ``ev.i_ic`` is row 0 of the arrays.
    side : {"L", "R"}
        Stance side.
    confidence : float
        Probability that ``side`` is right.
    angles_deg : ndarray, shape (M, 3)
        Tilt, obliquity and rotation from ``ev.i_ic`` on (at least to ``ev.i_next_ic``), deg; NaN where the
        orientation is not valid.
    acc_v_mps2 : ndarray, shape (M,)
        Vertical specific force over the same samples, m/s².
    rate_hz : float
        Sample rate, Hz.
    gap : bool
        The step touches a gap: the record is flagged and its metrics are NaN.
    acc_v_before_mps2 : ndarray, optional
        Vertical specific force of the step before (its IC up to this IC, exclusive), for the vertical
        oscillation over the stride; None: over this step alone (the first step of a bout).
    prev_t_ic_s : float
        The initial contact of the step before, s, for the stride time (NaN: none, the first step of a bout).

    Returns
    -------
    Step
    """
    step_time = ev.t_next_ic_s - ev.t_ic_s
    stride_time = ev.t_next_ic_s - prev_t_ic_s  # (NaN without a step before)
    contact = ev.t_fc_s - ev.t_ic_s
    if ev.running:
        flight = ev.t_next_ic_s - ev.t_fc_s if np.isfinite(contact) else _NAN
        flight = max(flight, 0.0) if np.isfinite(flight) else _NAN
    else:
        flight = 0.0
    n_step = ev.i_next_ic - ev.i_ic + 1
    if gap or n_step < 3:
        return Step(
            side=side,
            t_ic_s=ev.t_ic_s,
            t_fc_s=ev.t_fc_s,
            step_time_s=step_time if not gap else _NAN,
            contact_time_s=_NAN,
            flight_time_s=_NAN,
            cadence_spm=60.0 / step_time if (not gap and step_time > 0) else _NAN,
            cpd_deg=_NAN,
            obliquity_range_deg=_NAN,
            tilt_range_deg=_NAN,
            rotation_range_deg=_NAN,
            vertical_oscillation_cm=_NAN,
            impact_g=_NAN,
            gap=gap,
            laterality_confidence=confidence,
            stride_time_s=stride_time if not gap else _NAN,
        )
    ang = angles_deg[:n_step]
    tilt_r = _ptp(ang[:, 0])
    obl_r = _ptp(ang[:, 1])
    rot_r = _ptp(ang[:, 2])
    cpd = _NAN
    if np.isfinite(contact):
        n_st = min(max(int(round(contact * rate_hz)) + 1, 2), angles_deg.shape[0])
        obl = angles_deg[:n_st, 1]
        if np.all(np.isfinite(obl)):
            rel = obl - obl[0]
            cpd = float(rel.max()) if side == "L" else float(-rel.min())
    av = acc_v_mps2[: n_step - 1]  # IC .. next IC, exclusive
    if acc_v_before_mps2 is not None and acc_v_before_mps2.shape[0]:
        vo = vertical_oscillation_cm(np.concatenate([acc_v_before_mps2, av]), rate_hz, acc_v_before_mps2.shape[0])
    else:
        vo = vertical_oscillation_cm(av, rate_hz)
    c_imp = contact if np.isfinite(contact) else 0.5 * step_time
    n_imp = max(int(round(IMPACT_FRACTION * c_imp * rate_hz)) + 1, 2)
    impact = float(np.max(acc_v_mps2[:n_imp]) / G_MPS2)
    return Step(
        side=side,
        t_ic_s=ev.t_ic_s,
        t_fc_s=ev.t_fc_s,
        step_time_s=step_time,
        contact_time_s=contact,
        flight_time_s=flight,
        cadence_spm=60.0 / step_time,
        cpd_deg=cpd,
        obliquity_range_deg=obl_r,
        tilt_range_deg=tilt_r,
        rotation_range_deg=rot_r,
        vertical_oscillation_cm=vo,
        impact_g=impact,
        gap=False,
        laterality_confidence=confidence,
        stride_time_s=stride_time,
    )


def _window_mean(x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Mean of ``x[start_k : stop_k]`` per window (NaN if any sample is NaN).

    ``x`` is (M,) or (M, C) (channels averaged separately); an empty window is the one sample at its
    start. Each window is summed in place over its own samples (:func:`~pelvimon.dsp.events._step_means`),
    so a window's mean depends on its samples alone.
    """
    # channels first: each channel's windows along contiguous memory
    xc = x if x.ndim == 1 else np.ascontiguousarray(x.T)
    means = _step_means(xc, start, start + np.maximum(stop - start, 1))
    return means if x.ndim == 1 else means.T


def window_means(x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Per-window means used for the laterality evidence, each window summed on its own (see
    :func:`_window_mean`).

    Parameters
    ----------
    x : ndarray, shape (M,) or (M, C)
        Samples (any unit); several channels are averaged in one call, each as if alone.
    start, stop : ndarray of int, shape (K,)
        Windows ``x[start_k : stop_k]`` (``stop_k <= M``; an empty window is the sample at ``start_k``).

    Returns
    -------
    ndarray, shape (K,) or (K, C)
        Means, NaN where a window holds a NaN.
    """
    return _window_mean(np.asarray(x, dtype=np.float64), np.asarray(start), np.asarray(stop))


def _window_reduce(op: np.ufunc, x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``op`` (``np.maximum`` or ``np.minimum``) over ``x[..., start_k : stop_k]`` per window, along the last
    axis.

    Every window holds a sample (``start_k < stop_k``); a window reaching past the end of ``x`` is cut
    there. ``ufunc.reduceat`` reduces from each start up to the window's last sample, which is then taken
    in on its own (a window may end with the array, and ``reduceat`` has no index past it); the entries
    from a window's last sample to the next start are not used. Max and min are exact in any order, and
    NaN propagates.
    """
    return _reduce_at(op, x, *_window_ends(x, start, stop))


def _window_ends(x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``reduceat`` indices of the windows (each start, then its last sample) and the last samples."""
    last = np.minimum(stop, x.shape[-1]) - 1
    ind = np.empty(2 * start.shape[0], dtype=np.intp)
    ind[0::2] = start
    ind[1::2] = last
    return ind, last


def _reduce_at(op: np.ufunc, x: np.ndarray, ind: np.ndarray, last: np.ndarray) -> np.ndarray:
    return op(op.reduceat(x, ind, axis=-1)[..., 0::2], x[..., last])


def _window_extremes(x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum and minimum of ``x[..., start_k : stop_k]`` per window (see :func:`_window_reduce`)."""
    ends = _window_ends(x, start, stop)
    return _reduce_at(np.maximum, x, *ends), _reduce_at(np.minimum, x, *ends)


_EVENT_FIELDS = operator.attrgetter("i_ic", "i_next_ic", "i_end", "t_ic_s", "t_fc_s", "t_next_ic_s", "running",
                                    "bout_start")  # fmt: skip


class StepColumns(NamedTuple):
    """The events of several steps as columns, one entry per step (:func:`step_columns`)."""

    samples: np.ndarray
    """Absolute sample indices, shape (3, K), int: ``i_ic``, ``i_next_ic``, ``i_end``."""
    times_s: np.ndarray
    """Times, shape (3, K), s: ``t_ic_s``, ``t_fc_s``, ``t_next_ic_s``."""
    running: tuple[bool, ...]
    """``running`` of each step."""
    bout_start: tuple[bool, ...]
    """``bout_start`` of each step."""


def step_columns(events: Sequence[StepEvents]) -> StepColumns:
    """The fields of ``events`` (at least one) that the metrics and the laterality read, as columns."""
    i_ic, i_next, i_end, t_ic, t_fc, t_next, running, bout = zip(*map(_EVENT_FIELDS, events), strict=True)
    return StepColumns(np.array((i_ic, i_next, i_end), dtype=np.int64),
                       np.array((t_ic, t_fc, t_next), dtype=np.float64), running, bout)  # fmt: skip


def step_metrics_batch(
    events: Sequence[StepEvents] | StepColumns,
    sides: Sequence[Side],
    confidences: Sequence[float],
    angles_deg: np.ndarray,
    acc_v_mps2: np.ndarray,
    offset: int,
    rate_hz: float,
    prev_ic: np.ndarray | None = None,
    prev_t_ic_s: np.ndarray | None = None,
) -> list[Step]:
    """:func:`step_metrics` for several steps at once (vectorised; the same figures, sample for sample).

    Parameters
    ----------
    events : list of StepEvents, or their StepColumns
        Steps; their samples must lie inside the arrays.
    sides, confidences : sequence
        Stance side and its probability per step.
    angles_deg : ndarray, shape (M, 3)
        Tilt, obliquity, rotation of absolute samples ``offset .. offset + M - 1``, deg.
    acc_v_mps2 : ndarray, shape (M,)
        Vertical specific force of the same samples, m/s².
    offset : int
        Absolute index of row 0.
    rate_hz : float
        Sample rate, Hz.
    prev_ic : ndarray of int, shape (K,), optional
        Absolute index of the IC of the step before each step (its stride's start for the vertical
        oscillation), -1 where there is none (the first step of a bout); None: none for every step.
    prev_t_ic_s : ndarray, shape (K,), optional
        The time of that IC, s, for the stride time (NaN where there is none); None: none for every step.
    """
    cols = events if isinstance(events, StepColumns) else step_columns(events) if len(events) else None
    if cols is None:
        return []
    k = cols.samples.shape[1]
    idx3 = cols.samples - offset
    s, e_next, e_end = idx3[0], idx3[1] + 1, idx3[2] + 1
    t_ic, t_fc, t_nx = cols.times_s
    running = np.array(cols.running, dtype=bool)
    step_time = t_nx - t_ic
    contact = t_fc - t_ic
    flight = np.where(running, np.maximum(t_nx - t_fc, 0.0), 0.0)
    # every window starts at the IC; each figure has its own window length (at least one sample)
    n_next = np.maximum(e_next - s, 1)  # IC .. next IC
    c_ok = np.isfinite(contact)
    n_st = np.where(c_ok, np.round(np.where(c_ok, contact, 0.0) * rate_hz).astype(int) + 1, 2)
    n_st = np.maximum(np.minimum(np.maximum(n_st, 2), e_end - s), 1)  # IC .. FC
    c_imp = np.where(c_ok, contact, 0.5 * step_time)
    n_imp = np.maximum(np.round(IMPACT_FRACTION * c_imp * rate_hz).astype(int) + 1, 2)
    n_imp = np.maximum(np.minimum(n_imp, e_end - s), 1)  # the first IMPACT_FRACTION of the contact
    ang = np.ascontiguousarray(np.asarray(angles_deg, dtype=np.float64).T)  # (3, M): each angle contiguous
    av = np.ascontiguousarray(acc_v_mps2, dtype=np.float64)
    # ranges over IC .. next IC
    ang_hi, ang_lo = _window_extremes(ang, s, s + n_next)
    ranges = ang_hi - ang_lo
    # CPD over IC .. FC: the largest rise (left stance) or fall (right stance) of the obliquity from its IC
    # value; subtracting a constant keeps the order of the samples (rounding is monotonic), so the extremes
    # of ``obl - obl[IC]`` are those of ``obl`` minus ``obl[IC]``, and both are finite when every sample is
    obl_hi, obl_lo = _window_extremes(ang[1], s, s + n_st)
    obl0 = ang[1, s]
    finite = np.isfinite(obl_hi) & np.isfinite(obl_lo) & c_ok
    is_l = np.array([sd == "L" for sd in sides])
    cpd = np.where(finite, np.where(is_l, obl_hi - obl0, -(obl_lo - obl0)), np.nan)
    impact = _window_reduce(np.maximum, av, s, s + n_imp) / G_MPS2
    # vertical oscillation: double integration over the stride ending with the step, with the mean removed
    # before each integration. Removing a mean before a running sum is removing it times the sample count
    # after it, so each integration is one cumsum: its value at the window's last sample gives the mean (a
    # prefix: samples past the window never enter), and the velocity and the height come out times the
    # sample rate and its square (divided out of the peak-to-peak); the peak-to-peak over the step's own
    # samples
    rows = np.arange(k)
    n_pre = np.zeros(k, dtype=np.int64) if prev_ic is None else np.where(prev_ic >= 0, s + offset - prev_ic, 0)
    n_win = np.maximum(n_pre + n_next - 1, 1)  # up to the next IC, exclusive: one period
    width = int(n_win.max())
    av_w = np.take(av, np.minimum((s - n_pre)[:, None] + np.arange(width), av.shape[0] - 1))
    last = n_win - 1
    count = np.arange(1.0, width + 1.0)
    vel = np.cumsum(av_w, axis=1)
    vel -= (vel[rows, last] / n_win)[:, None] * count
    z = np.cumsum(vel, axis=1)
    z -= (z[rows, last] / n_win)[:, None] * count
    # over the step's own samples (a step of fewer than three samples has none worth a figure: NaN)
    z_hi, z_lo = _window_extremes(z.ravel(), rows * width + np.minimum(n_pre, last), rows * width + n_win)
    vo = np.where(n_next >= 3, (z_hi - z_lo) * (100.0 / (rate_hz * rate_hz)), np.nan)
    flight = np.where(c_ok | ~running, flight, np.nan)
    cadence = 60.0 / step_time
    # the columns in the order of Step's fields
    cols_out = [list(sides)] + [x.tolist() for x in (t_ic, t_fc, step_time, contact, flight, cadence, cpd,
                                                     ranges[1], ranges[0], ranges[2], vo, impact)]  # fmt: skip
    stride = np.full(k, np.nan) if prev_t_ic_s is None else t_nx - prev_t_ic_s
    cols_out += [[False] * k, [float(c) for c in confidences], stride.tolist()]
    # Step records built without the frozen dataclass' __init__ (one object.__setattr__ per field): the
    # same field values in the same __dict__, so they equal constructed ones (tested)
    new, names = object.__new__, _STEP_FIELDS
    if len(cols_out) != len(names):
        raise RuntimeError(f"internal: {len(cols_out)} step metric columns for {len(names)} Step fields")
    out = []
    for vals in zip(*cols_out, strict=True):
        rec = new(Step)
        rec.__dict__.update(zip(names, vals, strict=False))  # (as many values as names: checked above)
        out.append(rec)
    return out


_STEP_FIELDS = tuple(Step.field_names())
