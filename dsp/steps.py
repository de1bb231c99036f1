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

import numpy as np

from ..firmware_protocols.batch import G_MPS2
from .events import StepEvents
from .records import Side, Step

__all__ = ["IMPACT_FRACTION", "step_metrics", "vertical_oscillation_cm"]

IMPACT_FRACTION = 0.2
"""Impact window as a fraction of the contact time."""

_NAN = float("nan")


def vertical_oscillation_cm(acc_v_mps2: np.ndarray, rate_hz: float) -> float:
    """Peak-to-peak vertical displacement over one step, cm.

    Parameters
    ----------
    acc_v_mps2 : ndarray, shape (N,)
        Vertical specific force (gravity included, up positive) from one IC to the next, m/s².
    rate_hz : float
        Sample rate, Hz.
    """
    a = np.asarray(acc_v_mps2, dtype=np.float64)
    if a.shape[0] < 3:
        return _NAN
    a = a - a.mean()
    v = np.cumsum(a) / rate_hz
    v -= v.mean()
    z = np.cumsum(v) / rate_hz
    return float(np.ptp(z) * 100.0)


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

    Returns
    -------
    Step
    """
    step_time = ev.t_next_ic_s - ev.t_ic_s
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
    av = acc_v_mps2[:n_step]
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
    )


def _gather(x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``x[start_k : stop_k]`` padded to a common length by repeating each row's last sample.

    Returns the (K, L, ...) gather and the (K, L) mask of real samples. Sums over such windows are taken
    with ``cumsum`` (sequential), so a step's figures do not depend on which other steps share the batch.
    """
    length = np.maximum(stop - start, 1)
    n_max = int(length.max())
    idx = start[:, None] + np.arange(n_max)[None, :]
    valid = idx < (start + length)[:, None]
    idx = np.minimum(idx, (start + length - 1)[:, None])
    return x[idx], valid


def _window_mean(x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Mean of ``x[start_k : stop_k]`` per window (NaN if any sample is NaN), sequential summation."""
    g, valid = _gather(x, start, stop)
    n = valid.sum(axis=1)
    c = np.cumsum(np.where(valid, g, 0.0), axis=1)
    return c[np.arange(len(start)), n - 1] / n


def window_means(x: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Public form of the per-window mean used for the laterality evidence (see :func:`_window_mean`)."""
    return _window_mean(np.asarray(x, dtype=np.float64), np.asarray(start), np.asarray(stop))


def step_metrics_batch(
    events: list[StepEvents],
    sides: list[Side],
    confidences: list[float],
    angles_deg: np.ndarray,
    acc_v_mps2: np.ndarray,
    offset: int,
    rate_hz: float,
) -> list[Step]:
    """:func:`step_metrics` for several steps at once (vectorised; the same figures, sample for sample).

    Parameters
    ----------
    events : list of StepEvents
        Steps; their samples must lie inside the arrays.
    sides, confidences : list
        Stance side and its probability per step.
    angles_deg : ndarray, shape (M, 3)
        Tilt, obliquity, rotation of absolute samples ``offset .. offset + M - 1``, deg.
    acc_v_mps2 : ndarray, shape (M,)
        Vertical specific force of the same samples, m/s².
    offset : int
        Absolute index of row 0.
    rate_hz : float
        Sample rate, Hz.
    """
    k = len(events)
    if k == 0:
        return []
    s = np.array([e.i_ic for e in events]) - offset
    e_next = np.array([e.i_next_ic for e in events]) - offset + 1
    e_end = np.array([e.i_end for e in events]) - offset + 1
    t_ic = np.array([e.t_ic_s for e in events])
    t_fc = np.array([e.t_fc_s for e in events])
    t_nx = np.array([e.t_next_ic_s for e in events])
    running = np.array([e.running for e in events])
    step_time = t_nx - t_ic
    contact = t_fc - t_ic
    flight = np.where(running, np.maximum(t_nx - t_fc, 0.0), 0.0)
    # ranges over IC .. next IC
    ang, _ = _gather(angles_deg, s, e_next)
    ranges = ang.max(axis=1) - ang.min(axis=1)  # NaN propagates
    # CPD over IC .. FC
    c_ok = np.isfinite(contact)
    n_st = np.where(c_ok, np.round(np.where(c_ok, contact, 0.0) * rate_hz).astype(int) + 1, 2)
    n_st = np.minimum(np.maximum(n_st, 2), e_end - s)
    obl, valid = _gather(angles_deg[:, 1], s, s + n_st)
    rel = obl - obl[:, :1]
    cpd_l = np.where(valid, rel, -np.inf).max(axis=1)
    cpd_r = -np.where(valid, rel, np.inf).min(axis=1)
    finite = np.all(np.isfinite(obl), axis=1) & c_ok
    is_l = np.array([sd == "L" for sd in sides])
    cpd = np.where(finite, np.where(is_l, cpd_l, cpd_r), np.nan)
    # vertical oscillation: double integration with the mean removed before each integration
    av, valid = _gather(acc_v_mps2, s, e_next)
    n = valid.sum(axis=1)
    rows = np.arange(k)
    av0 = np.where(valid, av, 0.0)
    mean_a = np.cumsum(av0, axis=1)[rows, n - 1] / n
    a = np.where(valid, av - mean_a[:, None], 0.0)
    v = np.cumsum(a, axis=1) / rate_hz
    mean_v = np.cumsum(np.where(valid, v, 0.0), axis=1)[rows, n - 1] / n
    z = np.cumsum(np.where(valid, v - mean_v[:, None], 0.0), axis=1) / rate_hz
    vo = (np.where(valid, z, -np.inf).max(axis=1) - np.where(valid, z, np.inf).min(axis=1)) * 100.0
    vo = np.where(n >= 3, vo, np.nan)
    # impact: the first IMPACT_FRACTION of the contact
    c_imp = np.where(c_ok, contact, 0.5 * step_time)
    n_imp = np.maximum(np.round(IMPACT_FRACTION * c_imp * rate_hz).astype(int) + 1, 2)
    n_imp = np.minimum(n_imp, e_end - s)
    imp, valid = _gather(acc_v_mps2, s, s + n_imp)
    impact = np.where(valid, imp, -np.inf).max(axis=1) / G_MPS2
    out = []
    for j in range(k):
        out.append(
            Step(
                side=sides[j],
                t_ic_s=float(t_ic[j]),
                t_fc_s=float(t_fc[j]),
                step_time_s=float(step_time[j]),
                contact_time_s=float(contact[j]),
                flight_time_s=float(flight[j]) if c_ok[j] or not running[j] else _NAN,
                cadence_spm=float(60.0 / step_time[j]),
                cpd_deg=float(cpd[j]),
                obliquity_range_deg=float(ranges[j, 1]),
                tilt_range_deg=float(ranges[j, 0]),
                rotation_range_deg=float(ranges[j, 2]),
                vertical_oscillation_cm=float(vo[j]),
                impact_g=float(impact[j]),
                gap=False,
                laterality_confidence=float(confidences[j]),
            )
        )
    return out
