"""Typed records of the gait analysis: ``Step``, ``Asymmetry`` and ``Alert`` (see docs/design).

Angles in degrees, times in seconds (session time), rates in steps per minute.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Side = Literal["L", "R"]


@dataclass(frozen=True)
class Step:
    """One step, named by its stance side, from its initial contact to the next initial contact.

    Attributes
    ----------
    side : {"L", "R"}
        Stance foot of this step.
    t_ic_s : float
        Initial contact (foot strike) of the stance foot, session time in s.
    t_fc_s : float
        Final contact (toe-off) of the stance foot, s.
    step_time_s : float
        From this initial contact to the next (other foot's) initial contact, s.
    contact_time_s : float
        ``t_fc_s - t_ic_s``, s.
    flight_time_s : float
        From toe-off to the next initial contact, s (0 for walking, where there is no flight).
    cadence_spm : float
        ``60 / step_time_s``, steps per minute.
    cpd_deg : float
        Contralateral pelvic drop: the largest drop of the swing side between this initial contact and
        toe-off, relative to the obliquity at initial contact, deg (positive = the swing side dropped).
    obliquity_range_deg, tilt_range_deg, rotation_range_deg : float
        Peak-to-peak of each pelvis angle over the step, deg.
    vertical_oscillation_cm : float
        Peak-to-peak vertical displacement of the sacrum over the step, cm.
    impact_g : float
        Peak vertical specific force shortly after initial contact, in g.
    gap : bool
        The step touches a data gap or reconnect; its metrics are not trustworthy and asymmetry skips it.
    laterality_confidence : float
        Probability (0..1) that ``side`` is right.
    stride_time_s : float
        The stride that ends with this step: from the initial contact of the step before (the same foot as
        the next one) to the next initial contact, s; NaN for the first step of a bout, after a missed or
        an extra contact (the step before it not 0.5-1.5 times as long) and across a gap.
    """

    side: Side
    t_ic_s: float
    t_fc_s: float
    step_time_s: float
    contact_time_s: float
    flight_time_s: float
    cadence_spm: float
    cpd_deg: float
    obliquity_range_deg: float
    tilt_range_deg: float
    rotation_range_deg: float
    vertical_oscillation_cm: float
    impact_g: float
    gap: bool = False
    laterality_confidence: float = 1.0
    stride_time_s: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class Asymmetry:
    """Left/right comparison of one metric over a rolling window of steps.

    ``diff = left_mean - right_mean`` with a ``level`` (e.g. 0.95) confidence interval
    ``[diff_ci_low, diff_ci_high]``; ``symmetry_index_pct = 100 (L - R) / (0.5 (L + R))``.
    """

    metric: str
    t_start_s: float
    t_end_s: float
    n_left: int
    n_right: int
    left_mean: float
    right_mean: float
    left_sd: float
    right_sd: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    symmetry_index_pct: float
    level: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Alert:
    """A sustained, credible and clinically meaningful left/right difference.

    ``side`` is the side with the worse value (e.g. the stance side with the larger CPD). ``t_end_s`` is
    None while the alert is active. ``threshold`` started it; ``release_threshold`` (the same kind, the
    hysteresis) is where it ends: below it for "abs_diff" and "si_pct", back inside it (the nearer edge of
    the narrowed normal band) for "balance_pct"; NaN in records written before it was kept.
    """

    metric: str
    side: Side
    left_value: float
    right_value: float
    threshold: float
    threshold_kind: str
    t_start_s: float
    t_end_s: float | None
    message: str
    release_threshold: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
