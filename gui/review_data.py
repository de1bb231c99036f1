"""What the review window shows, read and computed without Qt: steps, alerts, pelvis angles, statistics.

The samples come from the input's Source (:func:`pelvimon.analysis.open_input`, as for ``pelvimon analyze``); a
session file also gives the steps recorded live, a CSV samples only.
The samples are run through the streaming gait pipeline once (for the angle traces, and for the steps when
the file has none); asymmetry and alerts come from :func:`pelvimon.analysis.analyze_steps`, the code
``pelvimon analyze`` uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pelvimon.analysis import (
    CsvOptions,
    FileDamage,
    NoSamplesError,
    SessionAnalysis,
    analyze_steps,
    check_rate,
    moved_steps_out,
    open_input,
    read_source,
    sample_span_s,
)
from pelvimon.dsp.records import Alert, Step
from pelvimon.errors import PelvimonError
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.replay import ReplaySource

TABLE_METRICS: tuple[tuple[str, str, float, int], ...] = (
    ("cpd_deg", "Pelvic drop, CPD (deg)", 1.0, 1),
    ("contact_time_s", "Contact time (ms)", 1000.0, 0),
    ("flight_time_s", "Flight time (ms)", 1000.0, 0),
    ("step_time_s", "Step time (ms)", 1000.0, 0),
    ("cadence_spm", "Cadence (steps/min)", 1.0, 0),
    ("obliquity_range_deg", "Obliquity range (deg)", 1.0, 1),
    ("tilt_range_deg", "Tilt range (deg)", 1.0, 1),
    ("rotation_range_deg", "Rotation range (deg)", 1.0, 1),
    ("vertical_oscillation_cm", "Vertical oscillation (cm)", 1.0, 1),
    ("impact_g", "Impact (g)", 1.0, 2),
)
"""Metrics of the statistics table: Step field, label with unit, display scale, decimals."""

MIN_LATERALITY_CONFIDENCE = 0.8


@dataclass(eq=False)
class ReviewData:
    """One session ready for review.

    Attributes
    ----------
    name : str
        File name.
    steps : list of Step
    steps_source : {"recorded", "computed"}
        Whether the steps were recorded live or computed from the samples now.
    alerts : list of Alert
    analysis : SessionAnalysis
    t_s, tilt_deg, obliquity_deg, rotation_deg : ndarray, shape (N,)
        Pelvis angles on session time (NaN before calibration); empty without samples.
    duration_s : float
    """

    name: str
    steps: list[Step]
    steps_source: str
    alerts: list[Alert]
    analysis: SessionAnalysis
    t_s: np.ndarray
    tilt_deg: np.ndarray
    obliquity_deg: np.ndarray
    rotation_deg: np.ndarray
    duration_s: float
    calibration_state: str = "unknown"
    """The mount calibration's state at the end of the samples (``"unknown"`` without samples)."""
    t_first_s: float = 0.0
    """Time of the first sample, s (0 without samples); the last is ``t_first_s + duration_s``."""

    def step_arrays(self) -> dict[str, np.ndarray]:
        """Per-step columns: ``t_ic_s``, ``is_left``, ``usable`` and every float field of ``Step``."""
        out: dict[str, np.ndarray] = {}
        for name in Step.field_names():
            if name in ("side", "gap"):
                continue
            out[name] = np.array([getattr(s, name) for s in self.steps], dtype=np.float64)
        out["is_left"] = np.array([s.side == "L" for s in self.steps], dtype=bool)
        out["usable"] = np.array(
            [(not s.gap) and s.laterality_confidence >= MIN_LATERALITY_CONFIDENCE for s in self.steps], dtype=bool
        )
        return out

    def steps_between(self, t0: float, t1: float) -> list[Step]:
        """The steps with ``t0 <= t_ic_s <= t1`` (s), usable or not: those of a selected range (the range
        statistics use the usable ones among them)."""
        return [s for s in self.steps if t0 <= s.t_ic_s <= t1]

    def range_stats(self, t0: float, t1: float) -> dict[str, dict[str, tuple[float, float, int]]]:
        """Per metric and side ("L"/"R"): (mean, SD, n) of the usable steps with ``t0 <= t_ic_s <= t1``."""
        cols = self.step_arrays()
        if not self.steps:
            return {m: {"L": (math.nan, math.nan, 0), "R": (math.nan, math.nan, 0)} for m, *_ in TABLE_METRICS}
        sel = cols["usable"] & (cols["t_ic_s"] >= t0) & (cols["t_ic_s"] <= t1)
        out: dict[str, dict[str, tuple[float, float, int]]] = {}
        for metric, *_ in TABLE_METRICS:
            per: dict[str, tuple[float, float, int]] = {}
            for side, mask in (("L", cols["is_left"]), ("R", ~cols["is_left"])):
                v = cols[metric][sel & mask]
                v = v[np.isfinite(v)]
                mean = float(v.mean()) if v.size else math.nan
                sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
                per[side] = (mean, sd, int(v.size))
            out[metric] = per
        return out

    def angles_between(self, t0: float, t1: float) -> tuple[np.ndarray, ...]:
        """``(t_s, tilt, obliquity, rotation)`` with ``t0 <= t_s <= t1`` (views)."""
        i0 = int(np.searchsorted(self.t_s, t0, side="left"))
        i1 = int(np.searchsorted(self.t_s, t1, side="right"))
        return self.t_s[i0:i1], self.tilt_deg[i0:i1], self.obliquity_deg[i0:i1], self.rotation_deg[i0:i1]


def load_review(path: str | Path, *, csv: CsvOptions | None = None, config: Any = None) -> ReviewData:
    """Read a session file (``.mcap``) or a CSV and prepare everything the review shows.

    Raises
    ------
    PelvimonError
        Missing or unreadable file, or one without samples and steps (one line).
    """
    from pelvimon.dsp.pipeline import GaitPipeline, MountMove, mount_moves_of

    p = Path(path)
    # one read of the file: the samples, and a session file's steps recorded live on the way
    src = open_input(p, csv, keep_steps=True)
    batches: list[ImuBatch] = []
    rate_hz = math.nan
    time_unit = "s"
    damage = ""
    try:
        samples = read_source(src)
        batches, rate_hz, time_unit = samples.batches, samples.rate_hz, samples.time_unit
    except NoSamplesError as exc:
        damage = exc.detail
    recorded_steps = src.recorded_steps if isinstance(src, ReplaySource) else []
    if not batches and not recorded_steps:
        raise PelvimonError(f"{p}: no samples and no steps in the file{damage}; nothing to review")
    parts_t: list[np.ndarray] = []
    parts_a: list[np.ndarray] = []
    computed: list[Step] = []
    calibration = "unknown"
    moves: list[MountMove] = []
    if batches and any(b.acc_mps2 is not None for b in batches):
        # the rate the analysis runs at (a session file's nominal rate), as pelvimon analyze, in its range
        check_rate(p.name, rate_hz, time_unit)
        pipe = GaitPipeline(rate_hz)
        for b in batches:
            if b.acc_mps2 is None or not len(b):
                continue
            out = pipe.update(b)
            moves = list(mount_moves_of(out.events, moves))
            m = out.motion
            if m is not None and len(m):
                parts_t.append(m.t_s)
                parts_a.append(
                    np.column_stack(
                        [
                            np.where(m.valid, m.tilt_deg, np.nan),
                            np.where(m.valid, m.obliquity_deg, np.nan),
                            np.where(m.valid, m.rotation_deg, np.nan),
                        ]
                    )
                )
        pipe.finish()
        computed = list(pipe.steps_)
        calibration = str(pipe.calibration_.state_)
    t = np.concatenate(parts_t) if parts_t else np.zeros(0)
    ang = np.concatenate(parts_a) if parts_a else np.zeros((0, 3))
    # (the steps since a move began out of the left/right comparisons, as in pelvimon analyze)
    steps = moved_steps_out(recorded_steps if recorded_steps else computed, moves)
    source = "recorded" if recorded_steps else "computed"
    t_start, t_end = sample_span_s(batches)
    analysis = analyze_steps(steps, config, name=p.name, t_end_s=None if math.isnan(t_end) else t_end)
    # what the file reader skipped (read to its end above, with or without samples) goes with the quality
    # and so does a sensor that turned on the body (the samples' re-check, as in pelvimon analyze)
    analysis.quality = replace(analysis.quality, file_damage=FileDamage.of_source(src), mount_moves=tuple(moves),
                               n_batches_after_gap=sum(1 for b in batches if b.gap_before),
                               n_samples_lost=sum(int(b.n_lost) for b in batches))
    if math.isnan(t_end):
        t_start, t_end = 0.0, analysis.quality.duration_s
    return ReviewData(
        name=p.name,
        steps=steps,
        steps_source=source,
        alerts=analysis.alerts,
        analysis=analysis,
        t_s=t,
        tilt_deg=ang[:, 0].copy(),
        obliquity_deg=ang[:, 1].copy(),
        rotation_deg=ang[:, 2].copy(),
        duration_s=float(t_end - t_start),
        calibration_state=calibration,
        t_first_s=float(t_start),
    )
