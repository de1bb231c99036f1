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
