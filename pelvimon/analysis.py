"""Session analysis: samples -> gait pipeline -> steps -> asymmetry -> alerts -> summary and data quality.

One place wires the analysis that ``pelvimon analyze``, ``pelvimon report`` and the session review share:

* :func:`open_input` is the ``Source`` of an input file (CSV import, or a session file's recorded samples),
  and :func:`read_source` takes a source's samples to its end (the commands build the source, the
  analysis takes it);
* :func:`run_pipeline` runs the step pipeline (``pelvimon.dsp.pipeline``) over a whole recording, as the live
  engine runs it chunk by chunk;
* :func:`analyze_steps` turns steps into the rolling and whole-session asymmetry, alerts and the summary;
* :func:`analyze_source` (and :func:`analyze_samples`, :func:`analyze_batches`, :func:`analyze_file`) do
  all of it;
* :func:`compare_baseline` compares a session with a saved per-runner baseline.

The JSON form (:meth:`SessionAnalysis.to_json`) is what ``pelvimon analyze --json`` prints:
``{"steps": [...], "summary": {...}, "alerts": [...], "quality": {...}}``, NaN as null.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pelvimon.config import Baseline, Config
from pelvimon.dsp import MIN_RATE_HZ, RATE_TOLERANCE
from pelvimon.dsp.alerts import AlertMonitor
from pelvimon.dsp.asymmetry import (
    AsymmetryMonitor,
    RollingAsymmetry,
    SideStats,
    StepTable,
    compare_gaits,
    contact_time_balance_pct,
    session_asymmetry,
    session_side_stats,
    step_end_s,
)
from pelvimon.dsp.records import Alert, Asymmetry, Step
from pelvimon.errors import PelvimonError
from pelvimon.file_kinds import (
    BASELINE_FORMAT,
    MCAP_MAGIC,
    TRUTH_FORMAT,
    file_head,
    is_imu_csv,
    is_session_file,
    json_format,
)
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch, span_rate_hz
from pelvimon.sensors.source import Source

if TYPE_CHECKING:
    from pelvimon.dsp.pipeline import MountMove
    from pelvimon.sensors.csv_source import AccUnit, GyrUnit, TimeUnit

_T = TypeVar("_T")


@dataclass(frozen=True)
class CsvOptions:
    """How to read a CSV input: column mapping (design name -> file column) and units."""

    columns: Mapping[str, str] | None = None
    acc_unit: AccUnit = "mps2"
    gyr_unit: GyrUnit = "rads"
    time_unit: TimeUnit = "s"


@dataclass(frozen=True, eq=False)
class PipelineRun:
    """What the step pipeline produced for a recording.

    Attributes
    ----------
    steps : list of Step
    calibration_state : str
        Final state of the mount calibration ("calibrated", "gravity_known", "waiting_for_stillness").
    calibrated_at_s : float or None
        Session time the calibration completed (None if it never did).
    n_gap_events : int
        Gaps or reconnects the pipeline restarted at.
    n_gaps_bridged : int
        Short losses the pipeline ran on across (``PipelineParams.bridge_gap_s``).
    mount_moves : tuple of MountMove
        When the calibration's re-check found that the sensor had turned on the body (``MountMoved``).
    """

    steps: list[Step]
    calibration_state: str
    calibrated_at_s: float | None
    n_gap_events: int
    n_gaps_bridged: int = 0
    mount_moves: tuple[MountMove, ...] = ()


SIDES_LEGEND = (
    "Left and right name the stance foot: a left step runs from the left foot's strike to the right foot's. "
    "Its pelvic drop is how far the RIGHT hip drops while the left leg carries the body (the LEFT hip "
    "abductors hold it up); its contact and flight times follow the left foot's strike. Some gait labs "
    "name a step after the foot that lands at its end: their left and right step times are these swapped. "
    "L−R: left minus right; SI: 100·(L−R)/mean of L and R; n/a: fewer usable steps a side than a comparison "
    "needs (min_steps_per_side in the config, 8 by default)."
)
"""What left and right mean in the left/right tables (terminal and report)."""

NO_ANGLES_WHY = (
    "the steps before the calibration, and those up to 10 s after a restart at a gap, while the orientation "
    "filter settles; all of them when the sensor has no gyroscope"
)
"""Why a step has no pelvis angles (for the data-quality sections)."""

NO_GYROSCOPE_NOTE = (
    "No gyroscope in the input: the pelvis angles (pelvic drop, obliquity, tilt and rotation) need one, so they "
    "are n/a and no alert watches them; the contact, step and flight times, the vertical oscillation and the "
    "impact come from the accelerometer."
)
"""Said under the left/right tables of an input without gyroscope columns (its angle rows are n/a)."""


def turning_why() -> str:
    """Why some steps with pelvis angles have no rotation range (``Quality.n_steps_turning``)."""
    # (imported here: said only when there are such steps, and the module imports vqf)
    from pelvimon.dsp.orientation import OrientationParams

    return (f"turning: the pelvis faced more than {OrientationParams().turn_deg:g}° from the direction of travel "
            "(walking or running), or that direction was set anew in the step")


def mount_moved_text(move: MountMove) -> str:
    """A moved sensor (``Quality.mount_moves``) in words, for the data-quality sections."""
    when = f"at {move.t_s:.1f} s"
    if math.isfinite(move.t_from_s):
        when = f"from about {move.t_from_s:.1f} s (seen at {move.t_s:.1f} s)"
    until = ("the mounting was found again at " f"{move.t_until_s:.1f} s" if math.isfinite(move.t_until_s)
             else "the mounting was not found again before the end")  # fmt: skip
    return (f"the sensor seems to have turned on the body {when}; the recent strides ran {move.angle_deg:.0f}° from "
            f"the calibrated forward direction; {until}: the steps between are left out of the left/right "
            "comparison (their sides and angles are not known)")


def mount_moved_notes(q: Quality) -> list[str]:
    """Each moved sensor of ``q`` as a sentence of its own, for the report and the review window."""
    return [f"Sensor moved: {mount_moved_text(m)}." for m in q.mount_moves]


def moved_steps_out(steps: Sequence[Step], moves: Sequence[MountMove]) -> list[Step]:
    """``steps`` with those of each move's span (:meth:`MountMove.holds`: from its start until the mounting
    was found anew) at a ``laterality_confidence`` of at most ``MOVED_CONFIDENCE``, out of the left/right
    comparisons.

    The pipeline does so from the move's detection on, the moment it knew; the steps since the move began
    (some 1-20 s of them: the strides it took to show) went out before, with the confidence their sides had.
    A sensor turned around swaps each of their sides, so an analysis afterwards leaves them out as well.
    """
    if not moves:
        return list(steps)
    from pelvimon.dsp.pipeline import MOVED_CONFIDENCE

    return [replace(s, laterality_confidence=MOVED_CONFIDENCE)
            if s.laterality_confidence > MOVED_CONFIDENCE and any(m.holds(s.t_ic_s) for m in moves) else s
            for s in steps]  # fmt: skip


def no_angles_why(q: Quality) -> str:
    """Why steps have no pelvis angles, for the data-quality sections: :data:`NO_ANGLES_WHY`, or that the
    input has no gyroscope."""
    return "the input has no gyroscope" if q.has_gyroscope is False else NO_ANGLES_WHY


_CALIBRATION_TEXT = {
    "waiting_for_stillness": "not done: the recording has neither a still stand nor enough steady gait to find "
    "gravity from, so there are no pelvis angles",
    "gravity_known": "not done: gravity was found, not yet the forward direction (it needs strides of steady "
    "walking or running), so there are no pelvis angles",
    "calibrated": "done",
    "unknown": "unknown (only the steps are known)",
}


def calibration_text(q: Quality) -> str:
    """The mount calibration's outcome in words (the data-quality sections)."""
    return calibration_state_text(q.calibration_state, q.calibrated_at_s)


def calibration_state_text(state: str, at_s: float | None = None) -> str:
    """The mount calibration's state (``MountCalibration.state_``) in words; ``at_s``: when it was done."""
    if at_s is not None:
        return f"done at {at_s:.1f} s"
    return _CALIBRATION_TEXT.get(state, state)


@dataclass(frozen=True)
class FileDamage:
    """What the session file reader could not read (:class:`~pelvimon.sensors.session_file.SessionReader`):
    the ``file_damage`` object of the data quality. An intact session file and a CSV have nothing to tell
    (``damaged`` false, the counts 0, ``message`` None).

    Attributes
    ----------
    damaged : bool
        Data were skipped or left out (``SessionReader.damage``); a file only left unfinished is not damaged.
    n_damaged_ranges : int
        Separate stretches of the file that were skipped.
    n_bytes_skipped : int
        Bytes skipped in all, B.
    time_lost_s : float
        Session time lost in holes between parts that were read, s (what ``lost_after_s`` lost comes on top).
    lost_after_s : float or None
        The recording after this session time is lost (its length unknown: the file was cut short), s.
    cut_short : bool
        The file ends in unreadable bytes (a copy taken while recording, a full disk, a cut transfer).
    unfinished : bool
        The file has no summary section: the recording was not closed (a crash, a pulled plug, cut short).
    message : str or None
        What the reader found, in plain words (its warning), None if nothing.
    """

    damaged: bool = False
    n_damaged_ranges: int = 0
    n_bytes_skipped: int = 0
    time_lost_s: float = 0.0
    lost_after_s: float | None = None
    cut_short: bool = False
    unfinished: bool = False
    message: str | None = None

    @classmethod
    def of_source(cls, source: Source) -> FileDamage:
        """What the session file reader of a replayed source found after reading it to its end (nothing for
        other sources)."""
        reader = getattr(source, "reader", None)  # (a ReplaySource's SessionReader)
        if reader is None:
            return cls()
        skipped = reader.skipped
        places = sum(1 for i, r in enumerate(skipped) if i == 0 or r.offset != skipped[i - 1].offset + skipped[i - 1].n_bytes)
        return cls(
            damaged=reader.damage is not None,
            n_damaged_ranges=places,
            n_bytes_skipped=sum(r.n_bytes for r in skipped),
            time_lost_s=float(sum(b - a for a, b in reader.lost_spans_s if b is not None)),
            lost_after_s=next((float(a) for a, b in reader.lost_spans_s if b is None), None),
            cut_short=bool(reader.cut_short),
            unfinished=not reader.complete,
            message=reader.problem,
        )


def file_damage_text(q: Quality) -> str | None:
    """What was wrong with the session file, for the outputs (None if nothing): the reader's words, and
    that the results cover only what was read."""
    fd = q.file_damage
    if fd.message is None:
        return None
    if not fd.damaged:
        return f"The session file was not closed: {fd.message}; everything in it was read."
    return f"The session file is damaged: {fd.message}. The results cover only what could be read."


FREQUENT_LOSS_GAPS = 10
"""Gaps from which :meth:`Quality.frequent_loss_text` may speak."""
FREQUENT_LOSS_STEP_SHARE = 0.2
"""Share of the steps touching a gap from which :meth:`Quality.frequent_loss_text` speaks."""


@dataclass(frozen=True)
class Quality:
    """Data quality of one session (see ``to_dict`` for the JSON field names)."""

    duration_s: float
    n_samples: int
    rate_hz: float
    n_batches_after_gap: int
    n_samples_lost: int
    n_gap_events: int
    n_gaps_bridged: int
    calibration_state: str
    calibrated_at_s: float | None
    n_steps: int
    n_steps_gap: int
    n_steps_low_laterality: int
    n_steps_no_angles: int
    mean_laterality_confidence: float
    min_laterality_confidence: float
    has_gyroscope: bool | None = None
    """Whether the samples had gyroscope channels (None: only the steps are known)."""
    n_steps_turning: int = 0
    """Steps with pelvis angles (a pelvic drop and a tilt range) but no rotation range: the pelvis faced far
    from the running direction (a turn), or the running direction was restarted on the new heading in the step
    (docs/dsp_orientation.md)."""
    file_damage: FileDamage = FileDamage()
    """What the session file reader could not read (nothing for a CSV or an intact file)."""
    mount_moves: tuple[MountMove, ...] = ()
    """When the sensor seemed to turn on the body (:attr:`PipelineRun.mount_moves`); sides and angles after
    it may be wrong, and its steps are out of the left/right comparisons (:func:`moved_steps_out`)."""

    def frequent_loss_text(self) -> str | None:
        """What to do about a recording that lost samples so often that many of its steps touch a gap (a fifth
        of them or more, at 10 gaps or more), in words; None otherwise. A step that touches lost samples has
        no metrics, so such a recording loses its figures quietly otherwise."""
        if self.n_batches_after_gap < FREQUENT_LOSS_GAPS or not self.n_steps or \
                self.n_steps_gap < FREQUENT_LOSS_STEP_SHARE * self.n_steps:
            return None
        every = self.duration_s / self.n_batches_after_gap
        return (f"the recording lost samples {self.n_batches_after_gap} times (every {every:.1f} s on average), "
                f"and {self.n_steps_gap} of its {self.n_steps} steps touch a loss: such a step has no metrics "
                "(none is computed across missing samples); keep the sensor close to the phone or computer and "
                "away from other Bluetooth traffic, or check how the file was logged")

    @property
    def share_steps_flagged(self) -> float:
        """Share (0..1) of steps left out of the asymmetry (gap or uncertain side)."""
        if self.n_steps == 0:
            return math.nan
        return (self.n_steps_gap + self.n_steps_low_laterality) / self.n_steps

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["file_damage"] = asdict(self.file_damage)
        d["mount_moves"] = [m._asdict() for m in self.mount_moves]
        d["share_steps_flagged"] = self.share_steps_flagged
        return d


@dataclass(frozen=True)
class GaitPhase:
    """A stretch of one gait: consecutive steps of a bout (no pause) with the same gait (:func:`gait_stretches`),
    joined with the next stretch of the same gait when only steps at gaps lie between them (lost data split
    the bout, the runner did not stop). ``n_steps`` counts the steps of the gait, ``n_steps_gap`` the steps
    at gaps inside the phase."""

    gait: str
    t_start_s: float
    t_end_s: float
    n_steps: int
    n_steps_gap: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self, dash: str = "-", with_n: bool = True) -> str:
        """``walking 6-35 s (54 steps)`` (without the count if not ``with_n``)."""
        text = f"{self.gait} {self.t_start_s:.0f}{dash}{self.t_end_s:.0f} s"
        if not with_n:
            return text
        return f"{text} ({self.n_steps} steps" + (f", {self.n_steps_gap} more at gaps)" if self.n_steps_gap else ")")


PHASE_JOIN_S = 10.0
"""Two stretches of one gait with only steps at gaps between them are one phase when no two successive
initial contacts from the one to the other are further apart than this, s: lost data, not a stop (a link
drop of 2 s left 2.5 s between contacts)."""


def gait_phases_of(steps: Sequence[Step], stretches: Sequence[tuple[str, list[int]]]) -> list[GaitPhase]:
    """The :class:`GaitPhase` list of the stretches of ``steps``, those split by gaps alone joined."""
    runs: list[list[Any]] = []  # [gait, first index, last index, steps of the gait]
    for g, idx in stretches:
        if runs and runs[-1][0] == g:
            between = steps[runs[-1][2] + 1 : idx[0]]
            t = [s.t_ic_s for s in steps[runs[-1][2] : idx[0] + 1]]
            if between and all(s.gap for s in between) and max(np.diff(t)) <= PHASE_JOIN_S:
                runs[-1][2], runs[-1][3] = idx[-1], runs[-1][3] + len(idx)
                continue
        runs.append([g, idx[0], idx[-1], len(idx)])
    return [
        GaitPhase(g, steps[i0].t_ic_s, step_end_s(steps[i1]), n, sum(1 for s in steps[i0 : i1 + 1] if s.gap))
        for g, i0, i1, n in runs
    ]


@dataclass(eq=False)
class GaitPart:
    """The left/right comparison over the steps of one gait (walking and running are not mixed: contact
    time, step time, flight and impact differ between them far more than between sides)."""

    gait: str
    steps: list[Step]
    side_stats: dict[str, tuple[SideStats, SideStats]]
    asymmetry: dict[str, Asymmetry]
    _table: StepTable | None = field(default=None, repr=False)

    @property
    def table(self) -> StepTable:
        """``steps`` with their fields as arrays (the table given, or one made when first asked for)."""
        if self._table is None:
            self._table = StepTable(self.steps)
        return self._table

    def all_steps_stats(self, metrics: Sequence[str]) -> dict[str, dict[str, float | int]]:
        """Per metric, ``n``, ``mean`` and ``sd`` over every step of this gait without a gap, whatever its
        side: what is known when the sides are not (a sensor without a gyroscope)."""
        table = self.table
        out: dict[str, dict[str, float | int]] = {}
        for m in metrics:
            v = table.field(m)[~table.gap]
            v = v[np.isfinite(v)]
            out[m] = {
                "n": int(v.size),
                "mean": float(v.mean()) if v.size else math.nan,
                "sd": float(v.std(ddof=1)) if v.size > 1 else math.nan,
            }
        return out


def applies(gait: str | None, metric: str) -> bool:
    """Whether a metric means anything for a gait: walking has no flight (its flight time is 0 by
    definition), so its left/right tables leave flight time out."""
    return not (gait == "walking" and metric == "flight_time_s")


def all_steps_rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(metric, its all-steps figures) of a summary's ``all_steps`` that have steps and mean something for
    the session's gait (the all-steps table of ``analyze`` and of the report)."""
    return [(m, v) for m, v in summary["all_steps"].items() if v["n"] and applies(summary["gait"], m)]


def _gait_part(gait: str, steps: list[Step], cfg: Config) -> GaitPart:
    side_stats = session_side_stats(steps, cfg.asymmetry)
    return GaitPart(gait, steps, side_stats, session_asymmetry(steps, cfg.asymmetry, side_stats))


@dataclass(eq=False)
class SessionAnalysis:
    """Everything known about one session after the analysis.

    Attributes
    ----------
    name : str
        Input name (file name) for display.
    steps : list of Step
    side_stats : dict of str to (SideStats, SideStats)
        Whole-session left/right statistics per metric, over the steps of the session's gait (``gait``).
    asymmetry : dict of str to Asymmetry
        Whole-session asymmetry per metric, over the same steps.
    rolling : list of (float, list of Asymmetry)
        The rolling asymmetry after each step: (time of the update in s, current asymmetries).
    alerts : list of Alert
        All alerts of the session, by start time, ended at the latest at the end of the session.
    quality : Quality
    config : Config
    baseline : dict or None
        Comparison with a baseline (``compare_baseline``), when one was given.
    gait : str or None
        The session's gait, "running" or "walking": the one with more usable steps (running on a tie); None
        without usable steps. ``side_stats``, ``asymmetry``, the cadence and the baseline comparison are
        over its steps.
    parts : dict of str to GaitPart
        The comparison per gait present ("running", "walking"): the session's gait (the same statistics as
        ``side_stats`` and ``asymmetry``) and, when the session holds both, the other (a warm-up walk before
        a run, say).
    phases : list of GaitPhase
        The session's stretches of walking and running, in time order.
    """

    name: str
    steps: list[Step]
    side_stats: dict[str, tuple[SideStats, SideStats]]
    asymmetry: dict[str, Asymmetry]
    rolling: Sequence[tuple[float, list[Asymmetry]]]
    alerts: list[Alert]
    quality: Quality
    config: Config
    baseline: dict[str, Any] | None = None
    gait: str | None = None
    parts: dict[str, GaitPart] = field(default_factory=dict)
    phases: list[GaitPhase] = field(default_factory=list)

    @property
    def main_part(self) -> GaitPart | None:
        """The part of the session's gait (None without one)."""
        return self.parts.get(self.gait) if self.gait is not None else None

    def gait_steps(self) -> list[Step]:
        """The steps of the session's gait (those ``side_stats`` and ``asymmetry`` are over)."""
        part = self.main_part
        return part.steps if part is not None else []

    def phases_text(self, dash: str = "-") -> str:
        """The gait phases' labels, and how many steps lie outside them (steps at gaps before, after or
        between the phases), so that the counts add up to the session's steps."""
        text = ", ".join(ph.label(dash) for ph in self.phases)
        out = len(self.steps) - sum(ph.n_steps + ph.n_steps_gap for ph in self.phases)
        if out > 0:
            at_gaps = sum(1 for s in self.steps if s.gap) - sum(ph.n_steps_gap for ph in self.phases)
            what = "step" if out == 1 else "steps"
            if at_gaps == out:
                what += " at a gap" if out == 1 else " at gaps"
            text += f"; {out} more {what} outside {'it' if len(self.phases) == 1 else 'them'}"
        return text

    @property
    def other_gaits(self) -> dict[str, GaitPart]:
        """The parts of the gaits other than the session's."""
        return {g: part for g, part in self.parts.items() if g != self.gait}

    def contact_time_balance(self, asymmetry: Mapping[str, Asymmetry] | None = None) -> dict[str, float] | None:
        """Left share of contact time in % with its interval and the normal band, or None (of the
        session's gait, or of the given ``asymmetry``)."""
        a = (self.asymmetry if asymmetry is None else asymmetry).get("contact_time_s")
        if a is None:
            return None
        bal, lo, hi = contact_time_balance_pct(a)
        rule = self.config.alerts.rules.get("contact_time_s")
        low, high = (rule.low, rule.high) if rule is not None and rule.kind == "balance" else (49.3, 50.7)
        return {
            "value_pct": bal,
            "ci_low_pct": lo,
            "ci_high_pct": hi,
            "normal_low_pct": low,
            "normal_high_pct": high,
        }

    def cadence_spm(self, steps: Sequence[Step] | None = None) -> float:
        """Cadence of the steps used for the asymmetry (of the session's gait, or among ``steps``), or, when
        no step has a known side (a sensor without a gyroscope), of every step without a gap: 60 s over
        their mean step time, steps/min (the mean of the per-step cadences would count a short step more
        than a long one is worth, and read high whenever step times vary). The steps out of the statistics
        are left out otherwise: the first of a bout, out of standing, is often not a whole step."""
        table = self._table(steps)
        chosen = np.isfinite(table.field("cadence_spm"))
        step_time = table.field("step_time_s")
        vals = step_time[chosen & table.usable(self.config.asymmetry)]
        if not vals.size:
            vals = step_time[chosen & ~table.gap]
        return 60.0 / float(np.mean(vals)) if vals.size else math.nan

    def n_steps_used(self, steps: Sequence[Step] | None = None) -> int:
        """Steps in the left/right comparison (of the session's gait, or among ``steps``)."""
        return int(np.count_nonzero(self._table(steps).usable(self.config.asymmetry)))

    def _table(self, steps: Sequence[Step] | None) -> StepTable:
        """The table of ``steps``, or of the steps of the session's gait."""
        if steps is not None:
            return StepTable.of(steps)
        part = self.main_part
        return part.table if part is not None else StepTable([])

    def _comparison(self, part: GaitPart | None, side_stats: Mapping[str, tuple[SideStats, SideStats]],
                    asymmetry: Mapping[str, Asymmetry]) -> dict[str, Any]:
        steps = part.table if part is not None else StepTable([])
        return {
            "n_steps_used": self.n_steps_used(steps),
            "cadence_spm": self.cadence_spm(steps),
            "all_steps": part.all_steps_stats(list(side_stats)) if part is not None else {},
            "per_side": {m: {"left": lr[0].to_dict(), "right": lr[1].to_dict()} for m, lr in side_stats.items()},
            "asymmetry": {m: a.to_dict() for m, a in asymmetry.items()},
            "contact_time_balance": self.contact_time_balance(asymmetry),
        }

    def summary(self) -> dict[str, Any]:
        """The ``summary`` object of the JSON output."""
        p = self.config.asymmetry
        return {
            "input": self.name,
            "duration_s": self.quality.duration_s,
            "n_steps": len(self.steps),
            "gait": self.gait,
            "gait_phases": [ph.to_dict() for ph in self.phases],
            **self._comparison(self.main_part, self.side_stats, self.asymmetry),
            "other_gaits": {
                g: {"gait": g, **self._comparison(part, part.side_stats, part.asymmetry)}
                for g, part in self.other_gaits.items()
            },
            "baseline": self.baseline,
            "config": {
                "sources": list(self.config.sources),
                "window_steps": p.window_steps,
                "window_s": p.window_s,
                "confidence_level": p.level,
                "autocorrelation": p.autocorrelation,
                "min_duration_s": self.config.alerts.min_duration_s,
            },
        }

    def to_json(self) -> dict[str, Any]:
        """``{"steps", "summary", "alerts", "quality"}`` with plain JSON types (NaN and inf as None)."""
        rest = jsonable(
            {
                "summary": self.summary(),
                "alerts": [a.to_dict() for a in self.alerts],
                "quality": self.quality.to_dict(),
            }
        )
        return {"steps": steps_json(self.steps), **rest}


def steps_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    """``[jsonable(s.to_dict()) for s in steps]``, made field by field: a field whose values are all
    Python floats, bools or strings (as the pipeline makes them) is taken as it is, its NaN and inf as None;
    any other value by :func:`jsonable`."""
    names = Step.field_names()
    columns = []
    for name in names:
        values = list(map(attrgetter(name), steps))
        kinds = set(map(type, values))
        if kinds == {float}:
            for i in np.flatnonzero(~np.isfinite(np.array(values, dtype=np.float64))).tolist():
                values[i] = None
        elif not kinds <= {bool, str}:
            values = [jsonable(v) for v in values]
        columns.append(values)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def jsonable(obj: Any) -> Any:
    """A copy with numpy scalars as Python numbers and non-finite floats as None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


# --- input ----------------------------------------------------------------------------------------------


@contextmanager
def input_errors() -> Iterator[None]:
    """Turn the readers' errors (bad CSV, unreadable session file, a source that cannot open) into the
    one-line ``PelvimonError`` the commands print."""
    from pelvimon.sensors.csv_source import CsvFormatError
    from pelvimon.sensors.source import SessionFileError, SourceError

    try:
        yield
    except (CsvFormatError, SessionFileError, SourceError) as exc:
        raise PelvimonError(str(exc)) from None


def open_input(path: str | Path, csv: CsvOptions | None = None, *, keep_steps: bool = False) -> Source:
    """The ``Source`` of an input file, for the offline commands (``analyze``, ``report``, ``review``).

    A session file (``.mcap``) replays its recorded samples (:class:`~pelvimon.sensors.replay.ReplaySource`;
    the samples the live analysis saw, at the session's nominal rate; with ``keep_steps`` it keeps the steps
    recorded live in its ``recorded_steps`` as it reads); any other file is CSV import
    (:class:`~pelvimon.sensors.csv_source.CsvSource`, in pipeline-sized chunks, cut at the gaps of its time
    column). Nothing is read here but the session file's header.

    Raises
    ------
    PelvimonError
        Missing file, a directory, or a session file that cannot be opened (one line naming the file).
    """
    if not str(path).strip():  # (before Path(): Path("") is the current folder)
        raise PelvimonError("the input file name is empty; give a CSV or session file")
    p = Path(path)
    if not p.exists():
        raise PelvimonError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise PelvimonError(f"{p}: is a directory; give a CSV or session file")
    head = file_head(p, 512) or b""
    not_a_recording = _not_a_recording(head)
    if not_a_recording:
        raise PelvimonError(f"{p}: {not_a_recording}")
    # (a CSV named .mcap is a CSV)
    if is_session_file(p, head) and (head.startswith(MCAP_MAGIC) or not is_imu_csv(p)):
        from pelvimon.sensors.replay import ReplaySource

        with input_errors():
            return ReplaySource(p, redecode=False, keep_steps=keep_steps)
    from pelvimon.sensors.csv_source import CsvSource

    o = csv if csv is not None else CsvOptions()
    return CsvSource(p, o.columns, o.acc_unit, o.gyr_unit, chunk=_PIPELINE_CHUNK_N, time_unit=o.time_unit)


def _not_a_recording(raw: bytes) -> str | None:
    """What a file pelvimon writes but does not read as a recording is (an HTML report, a JSON document), from
    its first bytes ``raw``, said with what to give instead; None for anything else (a CSV or session file, or
    what their readers then refuse in their own words: an HTML page read as CSV was "fields separated by
    semicolons")."""
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "is an HTML page (a report?), not a recording; give the CSV or session file it was made from"
    if head.startswith((b"{", b"[")):
        kind = json_format(raw)
        if kind == BASELINE_FORMAT:
            return "is a runner's baseline, not a recording; compare a recording against it with --baseline"
        if kind == TRUTH_FORMAT:
            return ("is the truth of a simulated session, not a recording; give the CSV of samples simulated "
                    "with it")
        return "is JSON, not a recording; give a CSV of samples or a session file"
    return None


class NoSamplesError(PelvimonError):
    """The source ended without giving a sample; ``detail``: what the file reader found damaged, in
    parentheses ("" if nothing)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True, eq=False)
class InputSamples:
    """The samples a source gave, on session time.

    Attributes
    ----------
    name : str
        The source's name (a file's name).
    batches : list of ImuBatch
        In order; a batch after lost samples has ``gap_before``.
    rate_hz : float
        The nominal sample rate the analysis runs at: the source's (a session file's recorded rate), else the
        time stamps' (:func:`~pelvimon.firmware_protocols.batch.span_rate_hz`), Hz.
    measured_hz : float
        The sample rate of the time stamps, Hz.
    file_damage : FileDamage
        What the session file reader could not read (nothing for other sources).
    time_unit : str
        The unit a CSV's time column was read in (``--time-unit``; "s" for other sources).
    """

    name: str
    batches: list[ImuBatch]
    rate_hz: float
    measured_hz: float
    file_damage: FileDamage = FileDamage()
    time_unit: str = "s"


def _run_to_end(main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """``asyncio.run(main())``, in a worker thread if this thread already runs an event loop (a notebook).

    The coroutine's value is handed over aside, not as the task's result: ``asyncio.run`` formats its task
    (the result too) when it checks its Ctrl-C handler at the end: 6 ms for an hour of sample batches.
    """
    value: list[_T] = []

    async def kept() -> None:
        value.append(await main())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(kept())
    else:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(kept())).result()
    return value[0]


@contextmanager
def held_reader_warnings(quiet: bool = False) -> Iterator[list[logging.LogRecord]]:
    """Hold back the session reader's log records while a file is read; those left in the list are logged
    at the end. ``quiet``: its warnings are dropped (the caller says itself what was damaged; its debug
    lines still go out), as :func:`drop_warnings` does for a caller that decides later."""
    logger = logging.getLogger("pelvimon.sensors.session_file")  # (named: a CSV does not import the reader)
    held: list[logging.LogRecord] = []

    def hold(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    logger.addFilter(hold)
    try:
        yield held
    finally:
        logger.removeFilter(hold)
        if quiet:
            drop_warnings(held)
        for record in held:
            logger.handle(record)


def drop_warnings(held: list[logging.LogRecord]) -> None:
    """Keep only the records under WARNING of those :func:`held_reader_warnings` holds."""
    held[:] = [r for r in held if r.levelno < logging.WARNING]


def read_source(source: Source) -> InputSamples:
    """Open the source, take every sample batch it gives to its end, and close it.

    A CSV's samples are checked against their stated units (:func:`check_units`).

    Raises
    ------
    PelvimonError
        A file that cannot be read (one line naming the file, and the line for CSV), or time stamps that give
        no sample rate; ``NoSamplesError`` if the source gave no sample.
    """

    async def collect() -> list[ImuBatch]:
        async with source:
            return [ev async for ev in source if isinstance(ev, ImuBatch)]

    with input_errors(), held_reader_warnings() as held:
        batches = _run_to_end(collect)
        info = source.info
        if not any(len(b) for b in batches):
            what = "the session file holds no decoded samples (/imu)" if info.protocol != "csv" else "no samples"
            # what was damaged goes into this one line, not into a warning before it
            reader = getattr(source, "reader", None)  # (a ReplaySource's SessionReader)
            problem = getattr(reader, "problem", None)
            why = f" ({problem})" if problem else ""
            if problem:
                drop_warnings(held)
            raise NoSamplesError(f"{info.address or info.name}: {what}{why}; nothing to analyse", why)
    if info.protocol == "csv":
        meta = info.metadata
        check_units(batches, str(meta.get("acc_unit", "mps2")), str(meta.get("gyr_unit", "rads")), info.name)
    rate = info.rate_hz
    stated = float(rate) if isinstance(rate, int | float) and math.isfinite(rate) and rate > 0 else None
    # a CSV source states the rate of its time stamps (their intervals over the time the parts between gaps span)
    measured = stated if stated is not None and info.protocol == "csv" else _rate_hz(batches, info.name)
    nominal = stated if stated is not None else measured
    damage = FileDamage.of_source(source)
    unit = str(info.metadata.get("time_unit", "s")) if info.protocol == "csv" else "s"
    return InputSamples(name=info.name, batches=batches, rate_hz=nominal, measured_hz=measured, file_damage=damage,
                        time_unit=unit)


def load_batches(path: str | Path, csv: CsvOptions | None = None) -> list[ImuBatch]:
    """The sample batches of an input file (:func:`open_input`, :func:`read_source`), on session time."""
    return read_source(open_input(path, csv)).batches


def check_units(batches: Sequence[ImuBatch], acc_unit: str, gyr_unit: str, name: str) -> None:
    """Refuse CSV samples whose size says the unit options are wrong: at rest and over gait the median
    specific force is about 1 g (0.5-2 g accepted), and a pelvis turns at no more than a few rad/s (a
    gyroscope read above 35 rad/s, 2000 deg/s, is in deg/s; one under 0.1 rad/s throughout while the
    accelerometer shows movement, given as deg/s, was in rad/s)."""
    n = sum(len(b) for b in batches)
    if n < 10 or any(b.acc_mps2 is None for b in batches):
        return
    step = max(1, n // 20000)  # a plausibility check: 20,000 samples spread over the file are plenty

    # every step-th sample of the whole stream, whatever its batches: each batch's first such sample
    starts = np.cumsum([0] + [len(b) for b in batches[:-1]])
    firsts = [int(-s0 % step) for s0 in starts]

    def spread(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([p[i0::step] for p, i0 in zip(parts, firsts, strict=True)])

    acc = spread([b.acc_mps2 for b in batches if b.acc_mps2 is not None])
    norm = np.sqrt(np.sum(acc * acc, axis=1))
    med = float(np.median(norm))
    if not 0.5 * G_MPS2 <= med <= 2.0 * G_MPS2:
        hint = (
            "the accelerometer columns look like g: add --acc-unit g"
            if acc_unit == "mps2" and 0.5 <= med <= 2.0
            else "the accelerometer columns look like m/s²: leave out --acc-unit g"
            if acc_unit == "g" and 0.5 * G_MPS2 <= med / G_MPS2 <= 2.0 * G_MPS2
            else "check the accelerometer columns (--columns) and their unit (--acc-unit)"
        )
        raise PelvimonError(
            f"{name}: the accelerometer reads {med:.3g} m/s² on median, where any sensor at rest or in gait reads "
            f"about 9.8 (1 g); {hint}"
        )
    if any(b.gyr_rads is None for b in batches):
        return
    gyr = spread([b.gyr_rads for b in batches if b.gyr_rads is not None])
    g99 = float(np.percentile(np.sqrt(np.sum(gyr * gyr, axis=1)), 99))
    if g99 > 35.0:
        hint = ("the gyroscope columns look like deg/s: add --gyr-unit dps" if gyr_unit == "rads"
                else "check the gyroscope columns (--columns)")  # fmt: skip
        raise PelvimonError(f"{name}: the gyroscope reads up to {g99:.3g} rad/s, beyond a pelvis' few rad/s; {hint}")
    if gyr_unit == "dps" and g99 < 0.1 and float(np.std(norm)) > 1.0:
        raise PelvimonError(
            f"{name}: the gyroscope reads at most {g99:.2g} rad/s while the accelerometer shows movement; the "
            "gyroscope columns look like rad/s: leave out --gyr-unit dps"
        )


# --- the pipeline seam ------------------------------------------------------------------------------------


def _rate_hz(batches: Sequence[ImuBatch], name: str = "") -> float:
    rate = span_rate_hz(list(batches))
    if rate is None:
        where = f"{name}: " if name else ""
        raise PelvimonError(f"{where}cannot tell the sample rate: the input needs at least two increasing times")
    return rate


MAX_RATE_HZ = 2000.0
"""Highest sample rate analysed (sensors stream up to 1666 Hz; the buffers grow with the rate), Hz."""

_PIPELINE_CHUNK_N = 16384
"""Samples per pipeline call in :func:`run_pipeline`, and per batch of a CSV source (:func:`open_input`)."""


def run_pipeline(batches: Sequence[ImuBatch], rate_hz: float | None = None, *, helper: bool | None = None) -> PipelineRun:
    """Run the streaming step pipeline over the batches (in order) and collect what it found.

    The offline analysis' way into the pipeline (``pelvimon.dsp.pipeline``). ``helper``: run the calibration and
    orientation stages in a helper process beside the rest (:mod:`pelvimon.motion_helper`; the same
    steps) over the recording up to its first gap; by default when the machine has a second core and that
    part is long enough for it to pay (``motion_helper.MIN_SAMPLES``).
    """
    from pelvimon import motion_helper
    from pelvimon.dsp.pipeline import CalibrationChange, GaitPipeline, GapEvent, mount_moves_of

    fs = rate_hz if rate_hz is not None else _rate_hz(batches)
    pipe = GaitPipeline(fs)
    # a long batch (given directly: a CSV source is already in such chunks) in chunks of _PIPELINE_CHUNK_N:
    # the pipeline gives the same steps for any chunking, and its per-sample arrays then stay small (an hour
    # at 200 Hz takes a fifth less time than in one chunk)
    chunks = [b.slice(a, a + _PIPELINE_CHUNK_N) if len(b) > _PIPELINE_CHUNK_N else b
              for b in batches for a in range(0, max(len(b), 1), _PIPELINE_CHUNK_N)]  # fmt: skip
    k = motion_helper.ahead_prefix(chunks)
    if helper is None:
        helper = motion_helper.usable() and sum(len(c) for c in chunks[:k]) >= motion_helper.MIN_SAMPLES
    events: list[Any] = []
    ahead = None
    try:
        ahead = motion_helper.MotionAhead(chunks[:k], fs) if helper else None
        for i, c in enumerate(chunks):
            if ahead is not None and i < k:
                events += pipe.update(c, ahead.next()).events
                if i == k - 1:
                    pipe.adopt_motion_state(ahead.state())
            else:
                events += pipe.update(c).events
    finally:
        if ahead is not None:
            ahead.close()
    events += pipe.finish().events
    calibrated = [e.t_s for e in events if isinstance(e, CalibrationChange) and e.state == "calibrated"]
    return PipelineRun(
        steps=list(pipe.steps_),
        calibration_state=str(pipe.calibration_.state_),
        calibrated_at_s=float(calibrated[0]) if calibrated else None,
        n_gap_events=sum(1 for e in events if isinstance(e, GapEvent) and not e.bridged),
        n_gaps_bridged=sum(1 for e in events if isinstance(e, GapEvent) and e.bridged),
        mount_moves=mount_moves_of(events),
    )


# --- analysis -----------------------------------------------------------------------------------------------


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold CPython's cyclic garbage collector while the analysis builds its records.

    An hour of running makes some 10,000 steps and 90,000 rolling asymmetry records, and every few hundred
    new objects the collector scans them all again (about a third of the time of ``analyze_steps``). The
    analysis makes no reference cycles, so nothing waits for the collector; it runs again afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()



class StepTracker:
    """Asymmetry and alerts updated once per step, in step order: the one rule the live engine and the
    offline analysis share, so both raise the same alerts at the same times (but between the start of a
    moved sensor and the moment it showed, which the analysis afterwards knows and the live engine cannot:
    :func:`moved_steps_out`, :meth:`drop_since`).

    Parameters
    ----------
    config : Config
        Asymmetry windows and alert rules.
    """

    def __init__(self, config: Config) -> None:
        self.asymmetry = AsymmetryMonitor(config.asymmetry)
        self.alerts = AlertMonitor(config.alerts)
        self.current: list[Asymmetry] = []
        self._n_steps = 0

    def push(self, step: Step) -> tuple[float, list[Asymmetry], list[Any]]:
        """Take one step; return its end time (s), the current asymmetries and the alert events."""
        t = step_end_s(step)
        self._n_steps += 1
        self.current = self.asymmetry.update([step])
        return t, self.current, self.alerts.update(self.current, t)

    def drop_since(self, t_from_s: float, t_s: float) -> tuple[list[Asymmetry], list[Any]]:
        """At time ``t_s``, take the steps from ``t_from_s`` on out of the asymmetry windows
        (:meth:`~pelvimon.dsp.asymmetry.AsymmetryMonitor.drop_since`); return the current asymmetries and the
        alert events."""
        self.current = self.asymmetry.drop_since(t_from_s)
        return self.current, self.alerts.update(self.current, t_s)

    def push_all(self, steps: Sequence[Step]) -> list[tuple[float, list[Asymmetry]]]:
        """:meth:`push` for every step of a fresh tracker, with the rolling asymmetry of all steps computed
        at once (:meth:`~pelvimon.dsp.asymmetry.AsymmetryMonitor.update_columns`, the same records as step by
        step).

        Returns (end time of the step in s, current asymmetries) per step; the alerts are in ``alerts``.
        A tracker that already holds steps takes them one by one.
        """
        return list(self.push_all_view(steps))

    def push_all_view(self, steps: Sequence[Step]) -> Sequence[tuple[float, list[Asymmetry]]]:
        """:meth:`push_all` for a fresh tracker, returning a read-only sequence whose entries are built when
        read (about 90,000 asymmetry records per hour of running that most analyses never look at). The
        alerts are evaluated from the columns (:meth:`AlertMonitor.update_columns`), with the same result."""
        if self._n_steps or len(self.asymmetry.params.metrics) < 2:  # (the column form needs two)
            return [self.push(s)[:2] for s in steps]
        steps = StepTable.of(steps)  # (its fields read once, for the rolling asymmetry and its caller)
        rolling = self.asymmetry.update_columns(steps)  # (its windows then as after the steps one by one)
        self._n_steps += len(steps)
        t_end = steps.t_end().tolist()
        self.alerts.update_columns(rolling, t_end)
        if steps:
            self.current = rolling[-1]
        return RollingView(t_end, rolling)


class RollingView(Sequence[tuple[float, list[Asymmetry]]]):
    """(time of the update in s, current asymmetries) after each step, built when read.

    Parameters
    ----------
    t_s : list of float
        Update time per step, s.
    rolling : RollingAsymmetry
        The rolling asymmetry per step, as columns.
    """

    def __init__(self, t_s: list[float], rolling: RollingAsymmetry) -> None:
        self.t_s = t_s
        self.rolling = rolling

    def __len__(self) -> int:
        return len(self.t_s)

    def __getitem__(self, i):  # type: ignore[no-untyped-def,override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return (self.t_s[i], self.rolling[i])

    def __iter__(self) -> Iterator[tuple[float, list[Asymmetry]]]:
        return zip(self.t_s, iter(self.rolling), strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RollingView | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def analyze_steps(
    steps: Sequence[Step],
    config: Config | None = None,
    *,
    name: str = "session",
    t_end_s: float | None = None,
    quality: Quality | None = None,
    baseline: Baseline | None = None,
) -> SessionAnalysis:
    """Asymmetry (rolling and whole session), alerts and summary of a list of steps.

    Parameters
    ----------
    steps : sequence of Step
        In time order.
    config : Config, optional
        Defaults if None.
    name : str
        Input name for display.
    t_end_s : float, optional
        End of the session, s (active alerts end there); by default the end of the last step.
    quality : Quality, optional
        Data quality from the samples; by default one built from the steps alone.
    baseline : Baseline, optional
        Compare the session with it.
    """
    cfg = config if config is not None else Config()
    table = StepTable.of(steps)  # the steps' fields, read once for all that follows
    steps = list(table.steps)
    tracker = StepTracker(cfg)
    with _gc_paused():
        rolling = tracker.push_all_view(table)
    if t_end_s is not None:
        end = t_end_s
    else:  # the latest update time (the latest end of a step)
        end = max(table.t_end().tolist()) if steps else 0.0
    alerts = tracker.alerts
    alerts.finish(end)
    # the whole-session comparison per gait: walking and running steps are not mixed
    stretches, by_gait, gait = compare_gaits(table, cfg.asymmetry)
    parts: dict[str, GaitPart] = {
        g: GaitPart(g, list(c.steps), c.side_stats, c.asymmetry, c.steps) for g, c in by_gait.items()
    }
    main = parts[gait] if gait is not None else _gait_part("running", [], cfg)
    q = quality if quality is not None else quality_from_steps(table, cfg, duration_s=end)
    out = SessionAnalysis(
        name=name,
        steps=steps,
        side_stats=main.side_stats,
        asymmetry=main.asymmetry,
        rolling=rolling,
        alerts=alerts.all_alerts(),
        quality=q,
        config=cfg,
        gait=gait,
        parts=parts,
        phases=gait_phases_of(steps, stretches),
    )
    if baseline is not None:
        # a baseline is compared with the steps of its own gait: a walking baseline against running steps
        # would show the gaits' difference (contact time -0.4 s) as the runner's change
        notes = list(baseline.notes)
        base_gait = baseline.meta.get("gait")
        compared: GaitPart | None = main
        if base_gait is not None and gait is not None and base_gait != gait:
            compared = parts.get(base_gait)
            if compared is None:
                notes.append(f"the baseline is of {base_gait} steps and this session has none: not compared")
            else:
                notes.append(f"the baseline is of {base_gait} steps: compared with this session's {base_gait} "
                             f"steps, not with its main gait ({gait})")
        stats = {} if compared is None else {
            m: v for m, v in compared.side_stats.items() if applies(compared.gait, m)}
        out.baseline = compare_baseline(stats, baseline, cfg.asymmetry.level)
        if notes:
            out.baseline["note"] = "; ".join(notes)
    return out


def _step_counts(steps: Sequence[Step], cfg: Config) -> dict[str, Any]:
    table = StepTable.of(steps)
    ok = ~table.gap
    lat = table.field("laterality_confidence")
    lat_ok = lat[ok]
    return {
        "n_steps": len(steps),
        "n_steps_gap": int(np.count_nonzero(~ok)),
        "n_steps_low_laterality": int(np.count_nonzero(ok & (lat < cfg.asymmetry.min_laterality_confidence))),
        "n_steps_no_angles": int(np.count_nonzero(ok & ~np.isfinite(table.field("cpd_deg")))),
        # (a step without a pelvic drop is counted above alone, whatever else it lacks: the counts do not overlap)
        "n_steps_turning": int(np.count_nonzero(ok & np.isfinite(table.field("cpd_deg"))
                                                & np.isfinite(table.field("tilt_range_deg"))
                                                & ~np.isfinite(table.field("rotation_range_deg")))),
        "mean_laterality_confidence": float(lat_ok.mean()) if lat_ok.size else math.nan,
        "min_laterality_confidence": float(lat_ok.min()) if lat_ok.size else math.nan,
    }


def quality_from_steps(steps: Sequence[Step], cfg: Config, duration_s: float) -> Quality:
    """Data quality when only the steps are known (no samples)."""
    return Quality(
        duration_s=float(duration_s),
        n_samples=0,
        rate_hz=math.nan,
        n_batches_after_gap=0,
        n_samples_lost=0,
        n_gap_events=0,
        n_gaps_bridged=0,
        calibration_state="unknown",
        calibrated_at_s=None,
        **_step_counts(steps, cfg),
    )


def analyze_batches(
    batches: Sequence[ImuBatch],
    config: Config | None = None,
    *,
    name: str = "session",
    baseline: Baseline | None = None,
    rate_hz: float | None = None,
) -> SessionAnalysis:
    """The whole analysis of a recording given as batches on session time.

    ``rate_hz`` is the nominal sample rate (a session file's, as the live analysis used); by default it
    is estimated from the time stamps.
    """
    if not any(len(b) for b in batches):
        raise PelvimonError(f"{name}: no samples to analyse")
    measured_hz = _rate_hz(batches, name)
    use_hz = rate_hz if rate_hz is not None else measured_hz
    return analyze_samples(InputSamples(name, list(batches), use_hz, measured_hz), config, baseline=baseline)


def sample_span_s(batches: Sequence[ImuBatch]) -> tuple[float, float]:
    """Session times of the first and the last sample of ``batches`` (empty batches skipped), s; (nan, nan)
    without a sample."""
    times = [b.t_s for b in batches if len(b)]
    if not times:
        return math.nan, math.nan
    return float(times[0][0]), float(times[-1][-1])


_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def check_rate(name: str, rate_hz: float, time_unit: str = "s") -> None:
    """Refuse a sample rate outside :data:`MIN_RATE_HZ`-:data:`MAX_RATE_HZ` (the rate the time stamps give,
    read in ``time_unit``), with what to check: the time unit that would give a rate in range, if one does.

    Raises
    ------
    PelvimonError
        The rate is out of range, or not a number.
    """
    lo, hi = MIN_RATE_HZ * (1.0 - RATE_TOLERANCE), MAX_RATE_HZ * (1.0 + RATE_TOLERANCE)
    if lo <= rate_hz <= hi:
        return
    given = _TIME_UNITS.get(time_unit, 1.0)
    # a column in ms (µs, ns) read in s reads 1000 (1e6, 1e9) times too slow: name the option that reads it
    fits = [(u, rate_hz * given / f) for u, f in _TIME_UNITS.items() if u != time_unit]
    hints = "".join(
        f" (in {u}, it reads {r:.4g} Hz: " + (f"leave out --time-unit {time_unit})" if u == "s" else
                                             f"add --time-unit {u})")
        for u, r in fits if lo <= r <= hi
    )
    what = ("check that the time column is in seconds" if time_unit == "s" else
            f"check that the time column is in {time_unit} (--time-unit {time_unit})") + hints
    if rate_hz < lo and time_unit == "s":
        what = "if the sensor sampled faster, " + what
    raise PelvimonError(
        f"{name}: the time stamps give a sample rate of {rate_hz:.4g} Hz; pelvimon analyses "
        f"{MIN_RATE_HZ:g}-{MAX_RATE_HZ:g} Hz (gait events need at least {MIN_RATE_HZ:g}): {what}"
    )


def analyze_samples(
    samples: InputSamples, config: Config | None = None, *, baseline: Baseline | None = None
) -> SessionAnalysis:
    """The whole analysis of the samples a source gave (:func:`read_source`)."""
    cfg = config if config is not None else Config()
    name, batches, use_hz = samples.name, samples.batches, samples.rate_hz
    check_rate(name, use_hz, samples.time_unit)
    with _gc_paused():
        run = run_pipeline(batches, use_hz)
    t0, t1 = sample_span_s(batches)
    n = sum(len(b) for b in batches)
    # (read once, for the quality counts and the analysis)
    table = StepTable.of(moved_steps_out(run.steps, run.mount_moves))
    q = Quality(
        duration_s=t1 - t0,
        n_samples=n,
        rate_hz=samples.measured_hz,
        n_batches_after_gap=sum(1 for b in batches if b.gap_before),
        n_samples_lost=sum(int(b.n_lost) for b in batches),
        n_gap_events=run.n_gap_events,
        n_gaps_bridged=run.n_gaps_bridged,
        calibration_state=run.calibration_state,
        calibrated_at_s=run.calibrated_at_s,
        **_step_counts(table, cfg),
        has_gyroscope=any(b.gyr_rads is not None for b in batches if len(b)),
        file_damage=samples.file_damage,
        mount_moves=run.mount_moves,
    )
    return analyze_steps(table, cfg, name=name, t_end_s=t1, quality=q, baseline=baseline)


def analyze_source(
    source: Source, config: Config | None = None, *, name: str | None = None, baseline: Baseline | None = None
) -> SessionAnalysis:
    """Read a source to its end (:func:`read_source`) and analyse its samples; ``name`` names the session
    in the results (default: the source's name)."""
    samples = read_source(source)
    if name is not None:
        samples = replace(samples, name=name)
    return analyze_samples(samples, config, baseline=baseline)


def analyze_file(
    path: str | Path,
    config: Config | None = None,
    *,
    csv: CsvOptions | None = None,
    baseline: Baseline | None = None,
) -> SessionAnalysis:
    """Read ``path`` (CSV or session file, :func:`open_input`) and analyse it (a session file at its recorded
    nominal rate)."""
    return analyze_source(open_input(path, csv), config, name=Path(path).name, baseline=baseline)


# --- baseline ---------------------------------------------------------------------------------------------


def _t_quantile(df: float, level: float) -> float:
    from scipy import special

    return float(special.stdtrit(df, 0.5 + level / 2)) if math.isfinite(df) and df > 0 else math.nan


def _change(parts: Iterable[tuple[float, SideStats]], level: float) -> tuple[float, float, float]:
    """Sum of ``sign * mean`` over the parts, with a Welch-Satterthwaite t interval."""
    parts = list(parts)
    est = sum(sign * s.mean for sign, s in parts)
    var = [s.sd**2 / s.n_eff if s.n_eff > 0 else math.nan for _, s in parts]
    se2 = sum(var)
    if not (math.isfinite(est) and math.isfinite(se2)):
        return est, math.nan, math.nan
    if se2 == 0:
        return est, est, est
    df = se2**2 / sum(v**2 / max(s.n_eff - 1, 1e-9) for v, (_, s) in zip(var, parts, strict=True))
    half = _t_quantile(df, level) * math.sqrt(se2)
    return est, est - half, est + half


def compare_baseline(
    side_stats: Mapping[str, tuple[SideStats, SideStats]], baseline: Baseline, level: float = 0.95
) -> dict[str, Any]:
    """Per metric: each side's change of the mean and the change of the L-R difference, with intervals.

    The intervals are Welch t intervals over the sessions' effective sample sizes (the two sessions are
    independent). Returns ``{"meta": baseline meta, "level": level, "metrics": {metric: {"left": {...},
    "right": {...}, "diff": {...}}}}`` where each entry holds ``baseline``, ``now``, ``change``,
    ``ci_low``, ``ci_high`` and ``credible`` (the interval excludes zero).
    """
    out: dict[str, Any] = {}
    for m, (nl, nr) in side_stats.items():
        if m not in baseline.stats:
            continue
        bl, br = baseline.stats[m]
        entry: dict[str, Any] = {}
        for key, now, base in (("left", nl, bl), ("right", nr, br)):
            c, lo, hi = _change([(1, now), (-1, base)], level)
            entry[key] = {"baseline": base.mean, "now": now.mean, "change": c, "ci_low": lo, "ci_high": hi}
        c, lo, hi = _change([(1, nl), (-1, nr), (-1, bl), (1, br)], level)
        entry["diff"] = {
            "baseline": bl.mean - br.mean,
            "now": nl.mean - nr.mean,
            "change": c,
            "ci_low": lo,
            "ci_high": hi,
        }
        for v in entry.values():
            v["credible"] = bool(math.isfinite(v["ci_low"]) and (v["ci_low"] > 0 or v["ci_high"] < 0))
        out[m] = entry
    return {"meta": dict(baseline.meta), "level": level, "metrics": out}


def baseline_of(analysis: SessionAnalysis, **meta: Any) -> Baseline:
    """The per-side summary of a session (of its gait's steps) as a ``Baseline`` to save."""
    info = {
        "source": analysis.name,
        "duration_s": analysis.quality.duration_s,
        "n_steps": len(analysis.steps),
        "gait": analysis.gait,
    }
    info.update({k: v for k, v in meta.items() if v is not None})
    return Baseline(stats=dict(analysis.side_stats), meta=jsonable(info))


# --- per-step table ---------------------------------------------------------------------------------------


def steps_csv_text(steps: Sequence[Step]) -> str:
    """The per-step table as CSV: a header of the ``Step`` field names, one row per step.

    Floats with full precision (``repr``), NaN as an empty cell, flags as ``true``/``false``.
    """
    names = Step.field_names()
    lines = [",".join(names)]
    for s in steps:
        cells = []
        for n in names:
            v = getattr(s, n)
            if isinstance(v, bool | np.bool_):
                cells.append("true" if v else "false")
            elif isinstance(v, float | np.floating):
                cells.append(repr(float(v)) if math.isfinite(v) else "")
            else:
                cells.append(str(v))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"
