"""The one streaming gait pipeline: calibration -> orientation -> events -> laterality -> steps.

Live sessions, replay and offline analysis all run this code; :func:`analyze_offline` is the same
pipeline fed one big chunk. Per chunk (an :class:`~pelvimon.firmware_protocols.batch.ImuBatch` on session
time):

1. ``gap_before`` (loss or reconnect): the step open at the gap is emitted flagged ``gap=True`` with NaN
   metrics, and every stage restarts (the mount calibration is kept: the sensor did not move on the body).
2. :class:`~pelvimon.dsp.calibration.MountCalibration` until the sensor -> pelvis rotation is known; from
   the sample after it completes, :class:`~pelvimon.dsp.orientation.PelvisOrientation` gives the pelvis
   angles (NaN before, and while the filter settles).
3. :class:`~pelvimon.dsp.events.GaitEventDetector` finds IC and FC from the accelerometer alone.
4. :class:`~pelvimon.dsp.laterality.LateralityTracker` names the stance side; :func:`step_metrics` fills
   the :class:`~pelvimon.dsp.records.Step`.

Latency: a step is emitted within 150 ms of the last event it needs (docs/dsp_gait.md): a running step
``EventParams.confirm_s`` (50 ms) after the next IC; a walking step, whose stance foot leaves the ground only
after the other foot's IC, after its own final contact (70-150 ms after it). Memory is bounded: every stage keeps a few seconds in ring buffers; only the list
of steps grows (drain it with :meth:`GaitPipeline.drain_steps`).

Streaming equals batch: every stage carries its state across chunks and events are decided on windows of
fixed size, so whole, notification-sized and random chunks give identical steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..firmware_protocols.batch import ImuBatch
from ._gait_ring import SampleRing
from .calibration import CalibrationParams, MountCalibration
from .events import EventParams, GaitEventDetector, GaitState, StateChange, StepEvents
from .laterality import ForwardMoment, LateralityParams, LateralityTracker, StepForward
from .orientation import OrientationParams, PelvisMotion, PelvisOrientation
from .records import Side, Step
from .steps import step_columns, step_metrics_batch, window_means

__all__ = [
    "CalibrationChange",
    "GapEvent",
    "GaitPipeline",
    "MOVED_CONFIDENCE",
    "MotionRows",
    "MountMove",
    "MountMoved",
    "PipelineOutput",
    "PipelineParams",
    "PipelineResult",
    "analyze_offline",
    "mount_moves_of",
]

# motion ring channels; _GYR, _ACC, _MOM and _UP hold three channels each (sensor frame, for laterality
# before calibration). The first _N_MOTION are those of the calibration and orientation stages
# (:meth:`GaitPipeline.motion_rows`).
_TILT, _OBL, _ROT, _AX, _GX, _AY = 0, 1, 2, 3, 4, 5
_N_MOTION = 6
_AV, _GYR, _ACC, _MOM, _UP = 6, 7, 10, 13, 16
_N_CH = 19


@dataclass(frozen=True)
class PipelineParams:
    """Parameters of every stage (frozen); ``None`` means the stage's defaults."""

    events: EventParams | None = None
    calibration: CalibrationParams | None = None
    orientation: OrientationParams | None = None
    laterality: LateralityParams | None = None
    early_stance_s: float = 0.15
    """Window after IC over which the obliquity velocity is averaged for laterality, s."""
    mount_quat_wxyz: tuple[float, float, float, float] | None = None
    """Known sensor -> pelvis rotation (scalar first); skips the streaming calibration (e.g. after
    :func:`~pelvimon.dsp.calibration.calibrate_offline`)."""
    recheck_mount: bool = True
    """Keep the calibration's forward re-check running after it completed and report a
    :class:`MountMoved` event when the sensor turned on the body (about 0.07 s of CPU per hour at 200 Hz)."""
    recalibrate: bool = True
    """After a :class:`MountMoved`, find the mounting anew from the strides that follow (a fresh
    calibration from the step that showed the move on, with gravity from the gait when no one stands
    still); until it completes the pelvis angles are unknown (NaN). False: keep the old frame."""
    recheck_rate_hz: float = 50.0
    """The mount re-check reads the means of ``k = rate // recheck_rate_hz`` consecutive samples (at 200 Hz,
    four), from ``RECHECK_MEANS_AFTER_S`` after the calibration on: its 6 Hz low-passed strides need no more,
    and it costs a quarter as much (0: every sample)."""
    bridge_gap_s: float = 0.25
    """Longest loss bridged instead of restarting every stage, s (0: restart on every gap). The lost samples
    are filled by linear interpolation between their neighbours so that the filters, the event detector and
    the alternation of sides run on; every step whose samples touch the filled ones is flagged ``gap`` with
    its metrics NaN, as after a restart. A lost BLE notification (a few to a few tens of milliseconds)
    otherwise cost the orientation filter's start-up each time: at 1 % notification loss only a tenth of
    the steps kept their angles."""


@dataclass(frozen=True)
class CalibrationChange:
    """The mount calibration changed state at ``t_s`` (``state`` as in ``MountCalibration.state_``, or
    "recalibrating": after a :class:`MountMoved`, the mounting is being found anew from the strides that
    follow; the next change is then "calibrated", when it is found)."""

    t_s: float
    state: str


@dataclass(frozen=True)
class GapEvent:
    """Data were lost (or the sensor reconnected) before ``t_s``: ``n_lost`` samples (0 if unknown). All
    stages restarted, or, when ``bridged``, ran on over interpolated samples (``PipelineParams.bridge_gap_s``)."""

    t_s: float
    n_lost: int
    bridged: bool = False


@dataclass(frozen=True)
class MountMoved:
    """The forward direction of the recent strides left the calibrated one by ``angle_deg`` (more than
    ``CalibrationParams.recheck_deg``, or ``recheck_fast_deg`` over the last few blocks) at ``t_s`` (the step
    that closed the gait block it did at): the sensor probably turned on the body (``MountCalibration.forward_moved_``,
    ``t_forward_moved_s_``). With ``PipelineParams.recalibrate`` the mounting is then found anew from the next
    strides (a :class:`CalibrationChange` to "recalibrating" at ``t_s``, then to "calibrated"), the pelvis
    angles NaN until then; otherwise the frame is kept. The steps whose IC is at ``t_s`` or later, until the
    mounting is found anew, have a ``laterality_confidence`` of at most :data:`MOVED_CONFIDENCE`: they stay
    out of the left/right comparisons.

    ``t_from_s``: from when the sensor seems to have run another way, s, seconds before ``t_s`` (the blocks of
    strides it took to show; ``MountCalibration.t_forward_moved_from_s_``). The steps between were given out
    before this was known, with their confidence: an analysis afterwards leaves them out of the left/right
    comparisons too (:func:`pelvimon.analysis.moved_steps_out`). NaN if not known."""

    t_s: float
    angle_deg: float
    t_from_s: float = float("nan")


MOVED_CONFIDENCE = 0.5
"""The ``laterality_confidence`` at most of the steps from a :class:`MountMoved` on (their side is a guess)."""


class MountMove(NamedTuple):
    """A moved sensor's span, from the events (:func:`mount_moves_of`): the re-check saw it at ``t_s``, s
    (:class:`MountMoved`), when the running direction of the recent strides stood ``angle_deg`` from the
    calibrated one; the sensor seems to have run another way from ``t_from_s``, s (NaN if not known); the
    mounting was found anew at ``t_until_s``, s (NaN: not yet, or not before the end)."""

    t_s: float
    angle_deg: float
    t_from_s: float = math.nan
    t_until_s: float = math.nan

    def holds(self, t_s: float, *, since_seen: bool = False) -> bool:
        """Whether a step at ``t_s`` is in the move's span (sides and angles not known): from
        :attr:`steps_out_from_s`, or from when it was seen (``since_seen``: what a stream knew then), until
        the mounting was found anew."""
        return (self.t_s if since_seen else self.steps_out_from_s) <= t_s and not t_s >= self.t_until_s

    @property
    def steps_out_from_s(self) -> float:
        """From when the steps are left out of the left/right comparisons afterwards, s."""
        return self.t_from_s if math.isfinite(self.t_from_s) else self.t_s


def mount_moves_of(events: Iterable[Any], moves: Sequence[MountMove] = ()) -> tuple[MountMove, ...]:
    """``moves`` and the :class:`MountMoved` among pipeline events (in order), each closed by the
    :class:`CalibrationChange` to "calibrated" that follows it (a move of ``moves`` still open is closed by
    these events): the one rule for the pipeline, the analysis and the live engine."""
    out = list(moves)
    for e in events:
        if isinstance(e, MountMoved):
            out.append(MountMove(float(e.t_s), float(e.angle_deg), float(e.t_from_s)))
        elif isinstance(e, CalibrationChange) and e.state == "calibrated" and out and math.isnan(out[-1].t_until_s):
            out[-1] = out[-1]._replace(t_until_s=float(e.t_s))
    return tuple(out)

RECHECK_MEANS_AFTER_S = 2.0
"""From this long after the calibration sample the re-check reads means of samples (``recheck_rate_hz``): after
the pipeline's one-second calibration calls, at a sample that does not depend on the chunking."""

_RECHECK_BLOCK_N = 16384
"""Samples per call of the calibration's re-check after it completed."""

_MAKE_BLOCKS = 16
"""Event detector blocks whose steps are made in one call, at most (a long chunk's in several)."""

PipelineEvent = StateChange | CalibrationChange | GapEvent | MountMoved


@dataclass(frozen=True, eq=False)
class MotionRows:
    """The calibration and orientation stages' share of one chunk, computed apart from the rest of the
    pipeline (:meth:`GaitPipeline.motion_rows`, given to :meth:`GaitPipeline.update`).

    Attributes
    ----------
    rows : ndarray, shape (6, N)
        Per sample: tilt, obliquity and rotation (deg, NaN until the angles are valid), the forward specific
        force in the pelvis frame (m/s²), the angular rate about the forward axis (rad/s) and the
        medio-lateral force in the level frame (m/s², NaN until valid); NaN before the calibration.
    events : list
        The calibration changes and a moved sensor (:class:`CalibrationChange`, :class:`MountMoved`) found
        in this chunk.
    """

    rows: np.ndarray
    events: list[PipelineEvent]

    N_ROWS = _N_MOTION
    """Rows per sample."""


@dataclass(frozen=True, eq=False)
class PipelineOutput:
    """What one :meth:`GaitPipeline.update` produced.

    Attributes
    ----------
    steps : list of Step
        Steps completed in this chunk.
    motion : PelvisMotion or None
        Per-sample pelvis angles of this chunk (``None`` before the calibration completes).
    events : list
        Gait-state changes (:class:`~pelvimon.dsp.events.StateChange`), calibration changes
        (:class:`CalibrationChange`), gaps (:class:`GapEvent`) and a moved sensor (:class:`MountMoved`),
        in time order of detection.
    """

    steps: list[Step]
    motion: PelvisMotion | None
    events: list[PipelineEvent] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """Result of :func:`analyze_offline`: all steps, events, the calibration and the final gait state."""

    steps: list[Step]
    events: list[PipelineEvent]
    calibration: MountCalibration
    state: GaitState
    n_samples: int


class GaitPipeline:
    """Streaming gait analysis of one sacral IMU.

    Parameters
    ----------
    rate_hz : float
        Nominal sample rate, Hz.
    params : PipelineParams, optional
        Defaults if ``None``.

    Attributes
    ----------
    steps_ : list of Step
        All steps so far (minus those taken by :meth:`drain_steps`).
    calibration_ : MountCalibration
        The mount calibration stage.
    state_ : {"standing", "walking", "running"}
        Current gait state.
    n_samples_ : int
        Samples processed.
    """

    def __init__(self, rate_hz: float, params: PipelineParams | None = None) -> None:
        self.rate_hz = rate_hz
        self.params = params
        p = params if params is not None else PipelineParams()
        self._p = p
        self._fs = float(rate_hz)
        self._detector = GaitEventDetector(self._fs, p.events)
        # the detector's capacity: both rings then hold the same samples (the steps it releases are held)
        self._ring = SampleRing(self._detector._ring.capacity, _N_CH)
        self._lat = LateralityTracker(p.laterality)
        self._fmom = ForwardMoment(self._fs)
        self._step_fwd = StepForward()
        self._orient: PelvisOrientation | None = None
        self.calibration_ = MountCalibration(p.calibration, rate_hz=self._fs)
        self._cal_state: str = self.calibration_.state_  # (or "recalibrating": after a move, until found anew)
        self._recheck = p.recheck_mount and p.mount_quat_wxyz is None
        # the re-check on means of k samples (recheck_rate_hz): whether begun, the open mean's sums
        if not p.recheck_rate_hz >= 0:
            raise ValueError(f"recheck_rate_hz must be >= 0 (0: every sample), got {p.recheck_rate_hz!r}")
        self._rc_k = max(1, int(self._fs // p.recheck_rate_hz)) if p.recheck_rate_hz > 0 else 1
        self._rc_on = False
        self._rc_carry: tuple[np.ndarray | None, np.ndarray | None, int] = (None, None, 0)
        if p.mount_quat_wxyz is not None:
            self._orient = PelvisOrientation(self._fs, np.asarray(p.mount_quat_wxyz, dtype=np.float64), p.orientation)
        self._last_step_period = float("nan")
        self._prev_step_ratio = float("nan")
        self._open_ic_t: float | None = None
        self._last_ic: tuple[int, float] | None = None  # IC (sample, time) of the last step made: the next one's stride start
        self._bridge_n = int(p.bridge_gap_s * self._fs)  # most samples filled in
        # samples after an IC that located it: its floor and steepest rise come up to an onset window and a
        # look-ahead after it, so a rise through filled samples can put an IC just before them
        d = self._detector
        self._fill_reach = d._n_onset + max(d._n_conf, d._n_conf_walk)
        self._last: tuple[float, np.ndarray, np.ndarray | None] | None = None  # last sample: t, acc, gyr
        # the moved sensor's spans (mount_moves_of): the steps in them are out of the left/right comparisons
        self._moves: tuple[MountMove, ...] = ()
        self._lat_restarts: list[float] = []  # calibrations found anew: the side sequence starts again there
        self._fwd_restarts: list[float] = []  # moves: the steps' forward direction is summed anew from there
        self._filled: list[tuple[int, int]] = []  # filled sample ranges [a, b), detector indices
        self.steps_: list[Step] = []
        self.n_samples_ = 0

    @property
    def state_(self) -> GaitState:
        return self._detector.state_

    def drain_steps(self) -> list[Step]:
        """Return and forget the steps collected in ``steps_``."""
        out, self.steps_ = self.steps_, []
        return out

    # ------------------------------------------------------------------ gaps
    def _fill(
        self, t0: float, acc0: np.ndarray, gyr0: np.ndarray | None, n_lost: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """The lost samples before ``t0``, or None when the gap is not to be bridged (too long, a count that
        the time stamps contradict, or a change of gyroscope).

        In gait, the samples of one stride earlier (the last two step intervals: with a limp, twice the
        median step is not a stride), bent linearly to meet the neighbours of the gap: gait
        repeats itself stride by stride, and the orientation filter integrates the angular rate over the
        gap, so a straight line through a 0.25 s hole of running left the pelvis angles up to 1.5 deg off
        for seconds (0.48 deg CPD RMSE over the next 4 s). Standing, or without a known step period: the
        straight line between the neighbours."""
        if self._last is None:
            return None
        t1, acc1, gyr1 = self._last
        n = n_lost if n_lost > 0 else int(round((t0 - t1) * self._fs)) - 1
        if not (1 <= n <= self._bridge_n) or not t0 > t1 or (gyr0 is None) != (gyr1 is None):
            return None
        if abs((t0 - t1) * self._fs - (n + 1)) > 0.5 * (n + 1) + 1:
            return None  # the clock jumped, or the count is wrong: restart
        w = (np.arange(1, n + 1) / (n + 1))[:, None]  # weight of the sample after the gap
        t = t1 + w[:, 0] * (t0 - t1)
        stride = self._stride_copy(n)

        def bridge(a1: np.ndarray, a0: np.ndarray, c: int) -> np.ndarray:
            if stride is None:
                return np.ascontiguousarray((1.0 - w) * a1 + w * a0)
            before, copy, after = stride[0][c : c + 3], stride[1][:, c : c + 3], stride[2][c : c + 3]
            return np.ascontiguousarray(copy + (1.0 - w) * (a1 - before) + w * (a0 - after))

        gyr = None if gyr0 is None or gyr1 is None else bridge(gyr1, gyr0, _GYR)
        return t, bridge(acc1, acc0, _ACC), gyr

    def _stride_copy(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """One stride before the ``n`` samples lost after the last one held: the rows that stand for the last
        sample before the gap, for the gap and for the first sample after it; None when not in gait or not
        held."""
        stride = self._detector.last_stride_s
        if not math.isfinite(stride):
            return None
        k = self._detector.n_samples_  # index of the first lost sample
        p = int(round(stride * self._fs))
        i0 = k - 1 - p
        if p <= n + 1 or i0 < self._ring.first:
            return None
        rows = self._ring.get(i0, i0 + n + 2)
        if rows.shape[0] != n + 2 or not np.all(np.isfinite(rows[:, _ACC : _ACC + 3])):
            return None
        return rows[0], rows[1 : n + 1], rows[n + 1]

    def _touches_fill(self, i0: int, i1: int) -> bool:
        """Whether detector samples ``i0 .. i1`` include filled ones."""
        return any(a <= i1 and i0 < b for a, b in self._filled)

    def _restart(self, t_s: float, n_lost: int, events: list[PipelineEvent], steps: list[Step]) -> None:
        # the steps closed before the gap are complete: emit them as at the end of data
        det = self._detector.flush()
        events.extend(det.states_)
        steps.extend(self._flushed_steps(det.steps_))
        # the step open at the gap has no next initial contact: flagged, metrics NaN
        if self._detector._last_ic is not None:
            t_ic = self._detector._time(self._detector._last_ic[1])
            steps.append(_open_gap_step(t_ic, self._lat))
        self._detector.reset()
        self._ring.reset()
        self._last_ic = None
        self._filled = []
        self._lat.reset()
        self._fmom.reset()
        if self._orient is not None:
            self._orient.reset()
        events.append(GapEvent(t_s, n_lost))

    # ------------------------------------------------------------------ main entry
    def update(self, batch: ImuBatch, motion: MotionRows | None = None) -> PipelineOutput:
        """Process one chunk of samples (session time).

        Parameters
        ----------
        batch : ImuBatch
            Samples with ``acc_mps2`` (required) and ``gyr_rads`` (optional) in the sensor frame.
        motion : MotionRows, optional
            The calibration and orientation stages' result for this chunk, computed by another pipeline
            (:meth:`motion_rows`, which was given every chunk before this one too): this pipeline then skips
            those stages, and its own stay where they were (:meth:`adopt_motion_state` brings them up to
            date). Not with a chunk after a gap (the samples bridged over a gap are this pipeline's).

        Returns
        -------
        PipelineOutput
            ``motion`` is None when ``motion`` was given.
        """
        acc = _acc_of(batch)
        after_gap = self._after_gap(batch)
        steps: list[Step] = []
        events: list[PipelineEvent] = []
        n = len(batch)
        if n == 0:
            return PipelineOutput([], None, [])
        t = batch.t_s
        gyr = batch.gyr_rads
        if motion is not None and (motion.rows.shape != (_N_MOTION, n) or after_gap):
            raise ValueError("motion rows given for another chunk, or for a chunk after a gap")
        if after_gap:
            fill = self._fill(t[0], acc[0], None if gyr is None else gyr[0], int(batch.n_lost))
            if fill is None:
                self._restart(float(t[0]), int(batch.n_lost), events, steps)
            else:
                k = self._detector.n_samples_
                self._filled = [r for r in self._filled if r[1] > self._ring.first] + [(k, k + fill[0].shape[0])]
                events.append(GapEvent(float(t[0]), int(batch.n_lost), bridged=True))
                t = np.concatenate([fill[0], t])
                acc = np.concatenate([fill[1], acc])
                gyr = None if gyr is None or fill[2] is None else np.concatenate([fill[2], gyr])
                n = t.shape[0]
        self._last = (float(t[-1]), acc[-1].copy(), None if gyr is None else gyr[-1].copy())

        # the chunk's channels, channel-major: the steps' windows are gathered channel by channel
        ch = np.full((_N_CH, n), np.nan)
        pelvis: PelvisMotion | None = None
        if motion is None:
            # 1. calibration, 2. orientation
            pelvis = self._orientation(t, acc, gyr, events)
            _fill_motion_rows(pelvis, ch)
        else:
            ch[:_N_MOTION] = motion.rows
            events.extend(motion.events)
        if events:
            old, self._moves = self._moves, mount_moves_of(events, self._moves)
            for i, m in enumerate(self._moves):
                new = i >= len(old)
                if new:
                    self._fwd_restarts.append(m.t_s)
                if math.isfinite(m.t_until_s) and (new or math.isnan(old[i].t_until_s)):
                    self._lat_restarts.append(m.t_until_s)
        # the vertical force and the up direction need no calibration; with the braking/propulsion moment
        # they give the forward direction after the first strides (laterality before the mount is known)
        av, up = self._detector.vertical_up(acc)
        if gyr is not None:
            ch[_GYR : _GYR + 3] = gyr.T
        ch[_ACC : _ACC + 3] = acc.T
        ch[_UP : _UP + 3] = up.T
        ch[_AV] = av
        # (given channel-major, the moment's filter and products run along contiguous memory)
        ch[_MOM : _MOM + 3] = self._fmom.update(ch[_ACC : _ACC + 3].T, ch[_UP : _UP + 3].T).T
        # 3. events, block by block so that the ring buffers hold every open step; the steps closed are made
        # together every few blocks and at the chunk's end, from the chunk's samples and those before it
        # still held
        bn = self._detector.block_n
        start = self._ring.n_total  # absolute index of the chunk's first sample
        closed: list[StepEvents] = []
        starts: list[tuple[int, float]] = []
        for b0 in range(0, n, bn):
            b1 = min(n, b0 + bn)
            det = self._detector.update(t[b0:b1], acc_v_mps2=av[b0:b1], acc_fwd_mps2=ch[_AX, b0:b1])
            events.extend(det.states_)
            if b0 and b0 % (_MAKE_BLOCKS * bn) == 0:
                # the arrays of one call stay small however long the chunk
                steps.extend(self._make_steps(closed, starts, ch, start))
                closed, starts = [], []
            if not det.steps_:
                continue
            prev = self._held_stride_starts(det.steps_)
            if prev is not None:
                closed += det.steps_
                starts += prev
            else:
                steps.extend(self._make_steps(closed, starts, ch, start))
                closed, starts = [], []
                steps.extend(_open_gap_step(ev.t_ic_s, self._lat) for ev in det.steps_)
        steps.extend(self._make_steps(closed, starts, ch, start))
        self._ring.append(ch.T)
        self.n_samples_ += n
        self.steps_.extend(steps)
        return PipelineOutput(steps, pelvis, events)

    def motion_rows(self, batch: ImuBatch, out: np.ndarray | None = None) -> MotionRows:
        """Only the calibration and orientation stages over one chunk, as :meth:`update` runs them, for
        another pipeline's :meth:`update` (these two stages then run beside the others, in another process;
        the result is the same). Give every chunk, in order, from the first; no chunk after a gap.

        Parameters
        ----------
        batch : ImuBatch
            As for :meth:`update`.
        out : ndarray, shape (6, N), optional
            Where to write the rows (a new array by default).

        Returns
        -------
        MotionRows
        """
        acc = _acc_of(batch)
        if self._after_gap(batch):
            raise ValueError("motion rows are computed ahead only for chunks without a gap before them")
        n = len(batch)
        rows = np.empty((_N_MOTION, n)) if out is None else out
        if rows.shape != (_N_MOTION, n):
            raise ValueError(f"out has shape {rows.shape}, not {(_N_MOTION, n)}")
        events: list[PipelineEvent] = []
        rows.fill(np.nan)
        if n:
            _fill_motion_rows(self._orientation(batch.t_s, acc, batch.gyr_rads, events), rows)
            self.n_samples_ += n
        return MotionRows(rows, events)

    def _after_gap(self, batch: ImuBatch) -> bool:
        """Whether ``batch`` follows lost samples (a gap before the first chunk is none)."""
        return batch.gap_before and self.n_samples_ > 0

    def motion_state(self) -> dict[str, Any]:
        """The calibration and orientation stages' state as plain data, for :meth:`adopt_motion_state`."""
        orient = self._orient
        return {
            "calibration": self.calibration_.save_state(),
            "calibration_state": str(self._cal_state),
            "orientation": None if orient is None else orient.save_state(),
            "mount_quat_wxyz": None if orient is None else np.asarray(orient.mount_quat_wxyz, dtype=np.float64).tolist(),
            "recheck_means": {
                "on": self._rc_on,
                "carry": [None if x is None else x.tolist() for x in self._rc_carry[:2]] + [self._rc_carry[2]],
            },
        }

    def adopt_motion_state(self, state: dict[str, Any]) -> None:
        """Take over the calibration and orientation stages of the pipeline whose :meth:`motion_rows` were
        given to :meth:`update` (its :meth:`motion_state` after the last of them): from here on this pipeline
        runs them itself, as if it had all along."""
        self.calibration_ = MountCalibration(self._p.calibration, rate_hz=self._fs).restore_state(state["calibration"])
        self._cal_state = state["calibration_state"]
        rc = state["recheck_means"]
        self._rc_on = bool(rc["on"])
        ca, cg, cnt = rc["carry"]
        self._rc_carry = (None if ca is None else np.asarray(ca, dtype=np.float64),
                          None if cg is None else np.asarray(cg, dtype=np.float64), int(cnt))
        self._orient = None
        if state["orientation"] is not None:
            mount = np.asarray(state["mount_quat_wxyz"], dtype=np.float64)
            self._orient = PelvisOrientation(self._fs, mount, self._p.orientation).restore_state(state["orientation"])

    def finish(self) -> PipelineOutput:
        """End of data: emit walking steps still waiting for their final contact."""
        det = self._detector.flush()
        steps = self._flushed_steps(det.steps_)
        self.steps_.extend(steps)
        return PipelineOutput(steps, None, [])

    # ------------------------------------------------------------------ stages
    def _orientation(
        self, t: np.ndarray, acc: np.ndarray, gyr: np.ndarray | None, events: list[PipelineEvent]
    ) -> PelvisMotion | None:
        """The calibration and orientation stages over one chunk; after a :class:`MountMoved`, the calibration
        anew (``PipelineParams.recalibrate``) from the sample after the step that showed it."""
        n_ev = len(events)
        motion = self._calibrated_orientation(t, acc, gyr, events)
        moved = next((e for e in events[n_ev:] if isinstance(e, MountMoved)), None)
        if moved is None or not self._p.recalibrate:
            return motion
        # the frame is not known from the step that showed the move on: a fresh calibration starts at the next
        # sample (the same sample whatever the chunking), and the angles are NaN until it completes
        s = int(np.searchsorted(t, moved.t_s, side="right"))
        self.calibration_ = MountCalibration(self._p.calibration, rate_hz=self._fs)
        self._cal_state = "recalibrating"
        events.append(CalibrationChange(float(moved.t_s), self._cal_state))
        self._orient = None
        self._rc_on = False
        self._rc_carry = (None, None, 0)
        tail = self._orientation(t[s:], acc[s:], None if gyr is None else gyr[s:], events) if s < t.shape[0] else None
        return _joined_motion(motion, s, tail, t, gyr is not None)

    def _calibrated_orientation(
        self, t: np.ndarray, acc: np.ndarray, gyr: np.ndarray | None, events: list[PipelineEvent]
    ) -> PelvisMotion | None:
        cal = self.calibration_
        k0 = 0
        rc0 = 0  # first sample of this chunk for the calibration's re-check
        if self._orient is None:
            # one-second blocks until the calibration completes; then the rest goes to its re-check
            step = max(1, int(round(self._fs)))
            for b0 in range(0, t.shape[0], step):
                b1 = min(t.shape[0], b0 + step)
                cal.update(t[b0:b1], acc[b0:b1], None if gyr is None else gyr[b0:b1])
                # (while recalibrating, only its completion is told: the gait goes on, no one is asked to stand)
                if cal.state_ != self._cal_state and (self._cal_state != "recalibrating" or cal.state_ == "calibrated"):
                    self._cal_state = cal.state_
                    t_ev = cal.t_calibrated_s_ if cal.t_calibrated_s_ is not None else float(t[b1 - 1])
                    events.append(CalibrationChange(float(t_ev), str(cal.state_)))
                if cal.state_ == "calibrated":
                    rc0 = b1
                    break
            if cal.state_ != "calibrated" or cal.mount_quat_wxyz_ is None:
                return None
            self._orient = PelvisOrientation(self._fs, cal.mount_quat_wxyz_, self._p.orientation)
            if cal.orientation_seed_ is not None and self._p.orientation in (None, OrientationParams()):
                # the calibration's VQF (run since the start of the stream, bias learnt while standing),
                # handed over exactly after the calibration sample: angles are valid at once
                self._orient.restore_state(cal.orientation_seed_)
            t_cal = cal.t_calibrated_s_ if cal.t_calibrated_s_ is not None else float(t[-1])
            k0 = int(np.searchsorted(t, t_cal, side="right"))
        if k0 >= t.shape[0]:
            return None
        motion = self._orient.update(t[k0:], acc[k0:], None if gyr is None else gyr[k0:])
        if self._recheck and rc0 < t.shape[0]:
            q = motion.quat_world_sensor_wxyz
            self._recheck_mount(t[rc0:], acc[rc0:], None if gyr is None else gyr[rc0:], events,
                                None if q is None else q[rc0 - k0 :])
        return motion

    def _recheck_mount(
        self, t: np.ndarray, acc: np.ndarray, gyr: np.ndarray | None, events: list[PipelineEvent],
        q: np.ndarray | None = None,
    ) -> None:
        """After calibration: keep the calibration's forward re-check running; report once if it moved.
        With a gyroscope it reads the orientation stage's sensor orientations ``q`` (the continuation of
        the calibration's own filter after the handover) instead of running a second VQF."""
        cal = self.calibration_
        if cal.state_ != "calibrated" or cal.forward_moved_ or t.shape[0] == 0:
            return
        t_last = float(t[-1])
        if self._rc_k > 1 and not self._rc_on:
            t_cal = cal.t_calibrated_s_
            s = 0 if t_cal is None else int(np.searchsorted(t, t_cal + RECHECK_MEANS_AFTER_S))
            _feed_recheck(cal, t[:s], acc[:s], None if gyr is None else gyr[:s], None if q is None else q[:s])
            if s < t.shape[0] and not cal.forward_moved_:
                cal.recheck_at_rate(self._fs / self._rc_k)
                self._rc_on = True
            t, acc, gyr, q = t[s:], acc[s:], None if gyr is None else gyr[s:], None if q is None else q[s:]
        if self._rc_on and t.shape[0]:
            t, acc, gyr, q = self._recheck_means(t, acc, gyr, q)
        if not cal.forward_moved_:
            _feed_recheck(cal, t, acc, gyr, q)
        if cal.forward_moved_:
            # (when and by how much it first moved: the same event whatever the chunking)
            at = cal.t_forward_moved_s_ if cal.t_forward_moved_s_ is not None else t_last
            since = cal.t_forward_moved_from_s_
            events.append(MountMoved(float(at), float(cal.forward_moved_deg_), math.nan if since is None else since))

    def _recheck_means(
        self, t: np.ndarray, acc: np.ndarray, gyr: np.ndarray | None, q: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The means of each ``_rc_k`` consecutive samples from the re-check's start (a mean left open at the
        chunk's end is carried), timed, and oriented, as their last sample."""
        k = self._rc_k
        ca, cg, cnt = self._rc_carry
        ma, ca, n_open = _means_of(acc, ca, cnt, k)
        mg, cg, _ = (None, None, 0) if gyr is None else _means_of(gyr, cg, cnt, k)
        self._rc_carry = (ca, cg, n_open)
        ends = np.arange(k - cnt - 1, t.shape[0], k)
        return t[ends], ma, mg, None if q is None else np.ascontiguousarray(q[ends])

    def _stride_starts(self, events: list[StepEvents], held: int) -> list[tuple[int, float]]:
        """Per step, the IC (sample, time) of the step before it (the start of its stride, for the vertical
        oscillation and the stride time), or (-1, NaN): the first step of a bout, a step before it not of
        about the same length (a missed or an extra IC), over filled samples, or no longer held (before sample
        ``held``)."""
        out = []
        last = self._last_ic
        for ev in events:
            p = (-1, math.nan)
            if last is not None and not ev.bout_start and last[0] >= held:
                n_this, n_prev = ev.i_next_ic - ev.i_ic, ev.i_ic - last[0]
                if 0.5 * n_this <= n_prev <= 1.5 * n_this and not (self._filled and self._touches_fill(last[0], ev.i_ic)):
                    p = last
            out.append(p)
            last = (ev.i_ic, ev.t_ic_s)
        self._last_ic = last
        return out

    def _held_stride_starts(self, events: list[StepEvents]) -> list[tuple[int, float]] | None:
        """:meth:`_stride_starts` of ``events``, or None when their samples are no longer held (cannot happen
        with the ring sizes used). Both rings have the detector's capacity and the motion ring takes a chunk
        at its end, so the samples the detector's ring holds are in the motion ring or in that chunk."""
        held = self._detector._ring.first
        prev = self._stride_starts(events, held)
        return prev if min(ev.i_ic for ev in events) >= held else None

    def _flushed_steps(self, events: list[StepEvents]) -> list[Step]:
        """The steps the detector released at the end of data or before a restart (their samples held in
        the rings)."""
        if not events:
            return []
        prev = self._held_stride_starts(events)
        if prev is None:
            return [_open_gap_step(ev.t_ic_s, self._lat) for ev in events]
        return self._make_steps(events, prev, np.zeros((_N_CH, 0)), self._ring.n_total)

    def _samples(self, i0: int, i1: int, chunk: np.ndarray, start: int) -> np.ndarray:
        """Channels of samples ``i0 .. i1 - 1``, shape (channels, i1 - i0), each contiguous: those before
        ``start`` from the ring, the others from ``chunk`` (channel-major, its first sample ``start``)."""
        if i0 >= start:
            return chunk[:, i0 - start : i1 - start]
        held = self._ring.get(i0, min(i1, start)).T
        if i1 <= start:
            return np.ascontiguousarray(held)
        return np.concatenate([held, chunk[:, : i1 - start]], axis=1)

    def _make_steps(
        self, events: list[StepEvents], prev: list[tuple[int, float]], chunk: np.ndarray, start: int
    ) -> list[Step]:
        """Laterality (sequential over the steps) and metrics (vectorised) of consecutive steps.

        ``prev`` from :meth:`_stride_starts`; ``chunk`` holds the channels of the samples from ``start``
        on (channel-major), the ring those before.
        """
        if not events:
            return []
        prev_ic = [p for p, _ in prev]
        cols = step_columns(events)
        i_ic, i_next, i_end = cols.samples
        i0 = min(int(i_ic.min()), min((p for p in prev_ic if p >= 0), default=events[0].i_ic))
        i1 = int(i_end.max()) + 1
        data = self._samples(i0, i1, chunk, start)
        fs = self._fs
        s = i_ic - i0
        n_step = i_next - i_ic
        contact = cols.times_s[1] - cols.times_s[0]
        c_ok = np.isfinite(contact)
        n_st = np.where(c_ok, np.round(np.where(c_ok, contact, 0.0) * fs).astype(int), n_step)
        n_st = np.minimum(np.maximum(n_st, 2), i_end + 1 - i_ic)
        n_early = np.minimum(max(2, int(round(self._p.early_stance_s * fs))), n_st)
        # laterality evidence, positive for left stance: obliquity velocity early in stance, and the
        # medio-lateral force over stance pushing the body away from the stance foot
        f_gyr = window_means(data[_GX], s, s + n_early)
        f_ml = -window_means(data[_AY], s, s + n_st)
        # the braking/propulsion moment summed over each step: the forward direction before the mount is known
        mom = window_means(data[_MOM : _MOM + 3].T, s, s + n_step) * n_step[:, None]
        # the transition into each step depends on the previous step's time: about one step period keeps
        # the alternation, about two means an initial contact was probably missed in between (a recursion
        # over plain floats; the sides then come from the tracker's run over the steps)
        isfinite = math.isfinite
        per, ratio = self._last_step_period, self._prev_step_ratio
        regular: list[bool] = []
        missed: list[bool] = []
        bouts = list(cols.bout_start)
        # the first step in the frame found anew starts the side sequence again (the alternation carried over
        # from the steps in the turned frame would hold their swapped sides); from the first step after a move
        # on, the forward direction of the steps (the sides without a gyroscope) is summed anew
        fwd_cuts = []
        if self._lat_restarts or self._fwd_restarts:
            for j, t_ic in enumerate(cols.times_s[0].tolist()):
                if self._lat_restarts and t_ic >= self._lat_restarts[0]:
                    bouts[j] = True
                    del self._lat_restarts[0]
                if self._fwd_restarts and t_ic >= self._fwd_restarts[0]:
                    fwd_cuts.append(j)
                    del self._fwd_restarts[0]
        for step_time, bout in zip((cols.times_s[2] - cols.times_s[0]).tolist(), bouts, strict=True):
            regular.append(not bout and (not isfinite(ratio) or abs(ratio - 1.0) < 0.35))
            missed.append(not bout and isfinite(ratio) and ratio > 1.6)
            per = step_time if not isfinite(per) else 0.8 * per + 0.2 * step_time
            ratio = step_time / per if per > 0 else float("nan")
        self._last_step_period, self._prev_step_ratio = per, ratio
        running = cols.running
        # from the sample before the IC's nearest (an IC found between two samples may lie in the fill) to
        # the samples that located the next IC
        reach = self._fill_reach
        bridged = ([self._touches_fill(ev.i_ic - 1, max(ev.i_end, ev.i_next_ic + reach)) for ev in events]
                   if self._filled else [])
        if any(bridged):
            # a step over filled samples keeps its side evidence (the fill is at most ``bridge_gap_s`` of its
            # windows), but its forward moment stays out of the running sum of the steps' forward direction
            mom[bridged] = 0.0
        feats = np.column_stack([f_gyr, f_ml])
        need = ~(np.isfinite(f_gyr) | np.isfinite(f_ml))
        if not need.any():
            a = 0
            for j in [*fwd_cuts, len(events)]:
                self._step_fwd.add_many(mom[a:j], running[a:j])
                if j < len(events):
                    self._step_fwd.reset()
                a = j
        else:
            # before the mount is known: the same two features about the forward direction of the steps so
            # far, step by step (the sensor-frame means only for the steps that need them)
            sel = np.flatnonzero(need)
            g_early = window_means(data[_GYR : _GYR + 3].T, s[sel], (s + n_early)[sel])
            a_st = window_means(data[_ACC : _ACC + 3].T, s[sel], (s + n_st)[sel])
            up_ic = data[_UP : _UP + 3, s[sel]].T
            i = 0
            for j in range(len(events)):
                if j in fwd_cuts:
                    self._step_fwd.reset()
                self._step_fwd.add(mom[j], running[j])
                if not need[j]:
                    continue
                fwd = self._step_fwd.forward(up_ic[i])
                if fwd is not None:
                    left = np.cross(up_ic[i], fwd)
                    fg = float(g_early[i] @ fwd)
                    # in the sensor frame the pelvic roll tilts gravity into "left" by g sin(obliquity), as
                    # large as the medio-lateral force itself: without a level frame, the force is used only
                    # when there is no gyroscope
                    feats[j, 0] = fg
                    feats[j, 1] = -float(a_st[i] @ left) if not np.isfinite(fg) else float("nan")
                i += 1
        sides, conf = self._lat.update_many(feats, regular, missed, bouts)
        if self._moves:
            # from when the re-check found the sensor turned on the body until the calibration is found anew,
            # the pelvis frame is not known: the side is the alternation's guess (a sensor turned around swaps
            # every side), so the steps stay out of the left/right comparisons
            moves = self._moves
            conf = [min(c, MOVED_CONFIDENCE) if any(m.holds(t, since_seen=True) for m in moves) else c
                    for c, t in zip(conf, cols.times_s[0].tolist(), strict=True)]  # fmt: skip
        out = step_metrics_batch(cols, sides, conf, data[_TILT : _ROT + 1].T, data[_AV], i0, fs, np.array(prev_ic),
                                 np.array([t for _, t in prev]))
        for j in (j for j, b in enumerate(bridged) if b):
            # its step time stays (one of its initial contacts may lie in the fill, so it is not a measured
            # figure): it tells the asymmetry windows that the step sequence ran on (``breaks_sequence``)
            out[j] = _gap_step(out[j].t_ic_s, out[j].side, out[j].laterality_confidence,
                               events[j].t_next_ic_s - events[j].t_ic_s)
        return out


def _feed_recheck(
    cal: MountCalibration, t: np.ndarray, acc: np.ndarray, gyr: np.ndarray | None, q: np.ndarray | None
) -> None:
    """Samples into the calibration's re-check, in blocks: its per-sample temporaries stay small (half the
    time over an hour of data); it carries its state across calls, so the result is that of one call."""
    for b0 in range(0, t.shape[0], _RECHECK_BLOCK_N):
        b1 = b0 + _RECHECK_BLOCK_N
        cal.update(t[b0:b1], acc[b0:b1], None if gyr is None else gyr[b0:b1], None if q is None else q[b0:b1])
        if cal.forward_moved_:
            return


def _means_of(x: np.ndarray, carry: np.ndarray | None, cnt: int, k: int) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Means of rows of ``x`` (n, 3) in groups of ``k``, the first group completing an open one (its sum so far
    ``carry`` over ``cnt`` rows); and the sum and count of the group left open at the end. Each group's rows
    are added in order from its first, whatever the chunks, so that the means are the same bits."""
    n = x.shape[0]
    need = k - cnt
    first = _rows_onto(carry, x[:need])
    if n < need:
        return np.zeros((0, 3)), first, cnt + n
    g = (n - need) // k
    body = x[need : need + g * k].reshape(g, k, 3)
    sums = np.empty((g + 1, 3))
    sums[0] = first
    sums[1:] = body[:, 0]
    for j in range(1, k):
        sums[1:] += body[:, j]
    rest = x[need + g * k :]
    return sums / k, _rows_onto(None, rest), rest.shape[0]


def _rows_onto(total: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """``total`` (None: nothing yet) with ``rows`` added one after the other (a handful: an open mean's)."""
    for row in rows:
        total = row.copy() if total is None else total + row
    return total


def _acc_of(batch: ImuBatch) -> np.ndarray:
    """The batch's accelerometer samples, which the pipeline needs."""
    if batch.acc_mps2 is None:
        raise ValueError("the gait pipeline needs accelerometer samples (ImuBatch.acc_mps2 is None)")
    return batch.acc_mps2


def _joined_motion(
    head: PelvisMotion | None, s: int, tail: PelvisMotion | None, t: np.ndarray, gyro: bool
) -> PelvisMotion | None:
    """One chunk's orientation results (samples ``t``, aligned at its end) from those of the frame before a
    move (``head``, kept up to sample ``s``) and after it (``tail``, aligned at the end, or None), the
    samples between unknown; they start where ``head`` does, else where ``tail`` does."""
    n = t.shape[0]
    tail_from = n if tail is None else n - len(tail)
    parts = []
    if head is not None and s > n - len(head):
        parts.append(head.slice(0, s - (n - len(head))))
        if s < tail_from:
            parts.append(PelvisMotion.unknown(t[s:tail_from], gyro))
    if tail is not None and len(tail):
        parts.append(tail)
    return PelvisMotion.concat(parts) if parts else None


def _fill_motion_rows(motion: PelvisMotion | None, ch: np.ndarray) -> None:
    """The calibration and orientation stages' channels (the first ``_N_MOTION`` rows of ``ch``, NaN on
    entry) from their per-sample result."""
    if motion is None:
        return
    k0 = ch.shape[1] - len(motion)
    ok = motion.valid
    np.copyto(ch[_TILT, k0:], motion.tilt_deg, where=ok)
    np.copyto(ch[_OBL, k0:], motion.obliquity_deg, where=ok)
    np.copyto(ch[_ROT, k0:], motion.rotation_deg, where=ok)
    if motion.gyr_pelvis_rads is not None:
        ch[_GX, k0:] = motion.gyr_pelvis_rads[:, 0]
    np.copyto(ch[_AY, k0:], motion.acc_level_mps2[:, 1], where=ok)
    # the forward force in the pelvis frame needs only the mount, not the settled filter
    ch[_AX, k0:] = motion.acc_pelvis_mps2[:, 0]


def _open_gap_step(t_ic_s: float, lat: LateralityTracker) -> Step:
    """The step left open by a restart: flagged, its metrics NaN, its side the alternation's guess."""
    side: Side = "R" if lat.side_ == "L" else "L"
    return _gap_step(t_ic_s, side, 0.5 if lat.side_ is None else lat.confidence_)


def _gap_step(t_ic_s: float, side: Side, confidence: float, step_time_s: float = math.nan) -> Step:
    """A step over a gap: flagged, its metrics NaN (its step time kept when it is known)."""
    nan = float("nan")
    return Step(
        side=side,
        t_ic_s=t_ic_s,
        t_fc_s=nan,
        step_time_s=float(step_time_s),
        contact_time_s=nan,
        flight_time_s=nan,
        cadence_spm=nan,
        cpd_deg=nan,
        obliquity_range_deg=nan,
        tilt_range_deg=nan,
        rotation_range_deg=nan,
        vertical_oscillation_cm=nan,
        impact_g=nan,
        gap=True,
        laterality_confidence=confidence,
    )


def analyze_offline(batch: ImuBatch, params: PipelineParams | None = None, rate_hz: float | None = None) -> PipelineResult:
    """Analyse a whole recording: the streaming pipeline fed one chunk, then :meth:`GaitPipeline.finish`.

    Parameters
    ----------
    batch : ImuBatch
        The recording (session time, sensor frame).
    params : PipelineParams, optional
        Defaults if ``None``.
    rate_hz : float, optional
        Sample rate, Hz; by default the median sample interval of ``batch``.

    Returns
    -------
    PipelineResult
    """
    if rate_hz is None:
        dt = np.diff(batch.t_s)
        dt = dt[dt > 0]
        if dt.size == 0:
            raise ValueError("cannot infer the sample rate: t_s needs at least two increasing times")
        rate_hz = 1.0 / float(np.median(dt))
    pipe = GaitPipeline(rate_hz, params)
    out = pipe.update(batch)
    fin = pipe.finish()
    return PipelineResult(
        steps=list(pipe.steps_),
        events=list(out.events) + list(fin.events),
        calibration=pipe.calibration_,
        state=pipe.state_,
        n_samples=pipe.n_samples_,
    )
