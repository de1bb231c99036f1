"""Mount calibration: the rotation from the sensor frame to the pelvis frame, for a sensor worn in any
orientation.

Method
------
1. **Up (pelvis z)** from standing still: the specific force of a still sensor points up. Stillness is
   detected automatically: a run of samples whose gyroscope norm and whose accelerometer norm deviation
   from 1 g stay under thresholds for at least ``still_s``, with small accelerometer spread. The pelvis
   frame is *defined* so that this standing posture has tilt 0 and obliquity 0 (the anatomical standing
   tilt cannot be seen by an IMU; angles are relative to standing). Until calibration completes, a later
   still period replaces the gravity estimate.
2. **Forward (pelvis x)** from the first strides of gait. In every running stance the trunk first brakes
   (anterior-posterior specific force backwards) while the vertical force rises, and then propels
   (forwards) while it falls (spring-mass running). Hence the forward direction ``f`` makes the covariance
   of the horizontal specific force along ``f`` with the time derivative of the vertical specific force
   *negative*. Walking is pendular, the opposite phase: the trunk is fastest, and the vertical force
   highest, in double support, so the covariance is *positive*; a block of strides counts as running
   when the low-passed specific force nearly vanishes (flight, ``flight_g``), else as walking. The
   medio-lateral force alternates sign between left and right stance and cancels over whole strides
   (blocks hold an even number of steps, start and end at a step); the static lean does not bias the
   estimate (the covariance of a periodic signal with its own derivative is zero); causal low-pass phase
   cancels in a covariance of two equally filtered signals. Per block, ``M = Σ a a'ᵀ`` (``a`` the
   low-passed specific force, ``a'`` its increment) and the block's forward vector is
   ``±(I - u uᵀ) M u`` (``u`` = up). With a gyroscope, ``a`` is taken in the level frame of a 6D VQF run on
   the sensor data, so the pelvis' own tilt and obliquity oscillation cannot leak the vertical force into
   the horizontal plane (asymmetric pelvic drop would otherwise bias the heading by several degrees); the
   block's moment is mapped back to the sensor frame with the block's mean orientation. Accelerometer-
   only streams use the fixed sensor frame. The resultant length of the per-block directions is the
   confidence; the decision waits for ``forward_strides`` strides and ``min_confidence``.
   Without any still period, gravity falls back to the mean vertical (gyroscope) or the mean specific
   force (accelerometer only) over ``gait_gravity_strides`` strides of steady gait (``gravity_source_``).
3. **Left (pelvis y)** = z × x (right-handed).

After calibration, blocks keep being checked while ``update`` is called: if the recent forward direction
drifts from the calibrated one by more than ``recheck_deg`` (or that of the last few blocks by more than
``recheck_fast_deg``) the estimator flags it (``forward_moved_``) without changing the frame mid-session.

Streaming equals batch bit for bit: sums run strictly in sample order, rotations are written out per
element, and VQF and the filters carry their state across chunks.

Quaternions are scalar first ``[w, x, y, z]``; ``mount_quat_wxyz_`` rotates sensor-frame vectors into
the pelvis frame.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import vqf

from ..firmware_protocols.batch import G_MPS2
from ._gait_ring import SampleRing
from ._inputs import check_chunk
from ._lowpass import Lowpass, butter_lowpass_sos
from ._orient_quat import matrix_entries, matrix_to_quat, rotate_by_entries
from .orientation import _STATE_VERSION as _ORIENT_STATE_VERSION
from .orientation import heading_state

__all__ = ["CalibrationParams", "MountCalibration", "MountResult", "calibrate_offline"]

CalibrationState = Literal["waiting_for_stillness", "gravity_known", "calibrated"]
_STATE_VERSION = 3
_RATE_PROBE_N = 16
_HEADING_SEED_S = 30.0
"""Sensor orientations kept before calibration for the running-direction tracker of the handover, s."""


@dataclass(frozen=True)
class CalibrationParams:
    """Parameters of :class:`MountCalibration` (frozen).

    Attributes
    ----------
    still_s : float
        Minimum duration of a still period used for gravity, s.
    still_gyr_rads : float
        Gyroscope norm below which a sample counts as still, rad/s (generous: uncalibrated bias allowed).
    still_acc_dev_mps2 : float
        Largest deviation of the accelerometer norm from 1 g for a still sample, m/s².
    still_acc_std_mps2 : float
        Largest per-axis standard deviation of the specific force over a still period, m/s².
    forward_strides : int
        Strides of gait needed before the forward direction is decided.
    min_confidence : float
        Resultant length (0..1) of the per-stride forward directions needed to decide.
    lowpass_hz : float
        Cut-off of the causal low-pass applied to the specific force before the forward estimate, Hz.
    step_high_g, step_low_g : float
        Hysteresis thresholds on the low-passed vertical specific force (in g) that count steps: a step is
        a rise above ``step_high_g`` after a dip below ``step_low_g``.
    block_s : float
        Gait is cut into blocks of this duration; each block gives one forward vector, s.
    skip_steps : int
        Steps at the start of a gait bout left out (gait initiation is not steady gait).
    min_block_steps : int
        Fewest steps in a block for it to be used.
    min_swing_g : float
        Smallest peak-to-peak of the low-passed vertical specific force in a used block, g.
    recheck_blocks : int
        Number of recent blocks whose forward direction is compared with the calibrated one.
    gait_gravity_strides : float
        Without any still period, gravity is taken from the mean specific force over this many strides.
    recheck_deg : float
        Angle between recent and calibrated forward directions above which ``forward_moved_`` is set, deg.
    recheck_fast_blocks, recheck_fast_deg : int, float
        Also set ``forward_moved_`` when the forward direction of only the last ``recheck_fast_blocks``
        blocks is more than ``recheck_fast_deg`` from the calibrated one: a sensor turned far (sideways,
        around, upside down) is seen in about half the time, where the longer window still holds the
        strides from before it. Three blocks estimate the direction less well than ten (their error is about
        sqrt(10/3) = 1.8 times as large), hence the limit of three times ``recheck_deg``.
    recheck_turn_deg : float
        With a gyroscope, blocks in which the heading turned by more than about this (overground turns) are
        left out of the re-check: a block's mean orientation then maps its moment to a wrong forward
        direction, deg (the determinant of the block's mean rotation matrix, ``sinc²`` of half the turn
        for a steady one, tells; straight gait keeps it near 1).
    recheck_gait_margin_g : float
        Blocks whose force floor is within this of ``flight_g`` are left out of the re-check, g: whether
        they are walking or running is not clear, and taken for the other gait a block's moment points
        backwards (real walks with a bouncing sensor reach 0.40 g).
    max_step_s : float
        A rise later than this after the previous one starts a new stride count (gait stopped), s.
    flight_g : float
        A stride whose low-passed vertical specific force drops below this (in g) has a flight phase and
        counts as running; otherwise walking (the forward rule flips its phase), g.
    bridge_gap_s : float
        Lost data (a time step longer than the sample interval) up to this long are bridged; a longer gap
        drops the stride that holds it from the forward estimate (the strides before and after it are
        kept, and so are gravity and the gait bout: the sensor did not move on the body), s.
    """

    still_s: float = 2.0
    still_gyr_rads: float = 0.15
    still_acc_dev_mps2: float = 0.5
    still_acc_std_mps2: float = 0.25
    forward_strides: int = 6
    min_confidence: float = 0.5
    lowpass_hz: float = 6.0
    step_high_g: float = 1.06
    step_low_g: float = 0.94
    block_s: float = 2.0
    skip_steps: int = 4
    min_block_steps: int = 3
    min_swing_g: float = 0.2
    recheck_blocks: int = 10
    gait_gravity_strides: int = 10
    recheck_deg: float = 20.0
    recheck_fast_blocks: int = 3
    recheck_fast_deg: float = 60.0
    recheck_turn_deg: float = 45.0
    recheck_gait_margin_g: float = 0.05
    max_step_s: float = 2.0
    flight_g: float = 0.4
    bridge_gap_s: float = 0.08

    def validate(self) -> None:
        """Raise ``ValueError`` with a one-line reason for inconsistent parameters."""
        if self.still_s <= 0 or self.still_gyr_rads <= 0 or self.still_acc_dev_mps2 <= 0:
            raise ValueError("still_s, still_gyr_rads and still_acc_dev_mps2 must be positive")
        if self.forward_strides < 1 or self.recheck_blocks < 1 or self.block_s <= 0:
            raise ValueError("forward_strides and recheck_blocks must be >= 1 and block_s > 0")
        if not self.step_low_g < 1.0 < self.step_high_g:
            raise ValueError("need step_low_g < 1 < step_high_g")
        if self.lowpass_hz <= 0:
            raise ValueError("lowpass_hz must be positive")
        if not self.bridge_gap_s >= 0:
            raise ValueError("bridge_gap_s must be >= 0")
        if not 0.0 < self.recheck_turn_deg <= 360.0:
            raise ValueError(f"recheck_turn_deg must be in (0, 360], got {self.recheck_turn_deg!r}")
        if not self.recheck_gait_margin_g >= 0.0:
            raise ValueError(f"recheck_gait_margin_g must be >= 0, got {self.recheck_gait_margin_g!r}")
        if self.recheck_fast_blocks < 1 or not 0.0 < self.recheck_fast_deg <= 180.0:
            raise ValueError("recheck_fast_blocks must be >= 1 and recheck_fast_deg in (0, 180]")


@dataclass(frozen=True, eq=False)
class MountResult:
    """Result of :func:`calibrate_offline`.

    Attributes
    ----------
    state : {"waiting_for_stillness", "gravity_known", "calibrated"}
    gravity_sensor : ndarray, shape (3,), or None
        Unit vector up in the sensor frame.
    forward_sensor : ndarray, shape (3,), or None
        Unit vector anterior (running direction, horizontal) in the sensor frame.
    mount_quat_wxyz : ndarray, shape (4,), or None
        Sensor -> pelvis rotation, scalar first.
    forward_confidence : float
        Resultant length (0..1) of the per-stride forward directions.
    n_strides : int
        Strides used for the forward direction.
    still_intervals : list of (float, float)
        Detected still periods (start, end), s.
    t_calibrated_s : float or None
        Time at which the streaming calibration would have completed, s.
    """

    state: CalibrationState
    gravity_sensor: np.ndarray | None
    forward_sensor: np.ndarray | None
    mount_quat_wxyz: np.ndarray | None
    forward_confidence: float
    n_strides: int
    still_intervals: list[tuple[float, float]] = field(default_factory=list)
    t_calibrated_s: float | None = None


def _vsum(xs: list[np.ndarray]) -> np.ndarray:
    """Sum of equally shaped arrays, in list order."""
    out = np.zeros_like(xs[0])
    for x in xs:
        out = out + x
    return out


def _seq_sum(carry: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``carry + rows[0] + rows[1] + ...`` added strictly in order, so that the result is bit-identical
    however the rows were split into chunks (``np.sum`` sums pairwise, ``np.cumsum`` in order)."""
    if rows.shape[0] == 0:
        return carry
    flat = np.empty((rows.shape[0] + 1, carry.size))  # C order whatever the layout of ``rows``
    flat[0] = carry.reshape(-1)
    flat[1:] = rows.reshape(rows.shape[0], -1)
    if flat.shape[1] < 2:
        return np.cumsum(flat, axis=0)[-1].reshape(carry.shape)
    # np.sum over the first axis of a C-ordered (n, M) array, M >= 2, adds the rows one after the other
    # (the same bits as the cumsum's last row, without writing the running sums)
    return flat.sum(axis=0).reshape(carry.shape)


def _seq_sum_onto(carry: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """:func:`_seq_sum` of a (M,) ``carry`` and C-ordered scratch rows (n, M), n >= 1, M >= 2, without copying
    the rows: their first row is overwritten with ``carry + rows[0]``, and the rows are then added one after
    the other onto numpy's starting +0.0 (which leaves every sum unchanged: a sum that starts at +0.0 is
    never -0.0, so ``carry`` is not either)."""
    np.add(carry, rows[0], out=rows[0])
    return rows.sum(axis=0)


def _norms(v: np.ndarray) -> np.ndarray:
    """Row norms of (N, 3) ``v``: ``np.linalg.norm(v, axis=1)`` written out (the same squares added in the
    same order, the same bits) without its temporary copies."""
    v0, v1, v2 = v[:, 0], v[:, 1], v[:, 2]
    return np.sqrt(v0 * v0 + v1 * v1 + v2 * v2)


def _step_rises(av: np.ndarray, high: float, low: float, level: int) -> tuple[np.ndarray, int]:
    """Steps by hysteresis: the samples where ``av`` (N,) goes above ``high`` while its level was low (it
    last went below ``low``), and the level after the last sample (-1 low, +1 high, 0 not known yet;
    ``level`` before the first sample).

    Without a Python loop: a step is a sample above ``high`` whose previous sample beyond either threshold
    (or, for the first such sample, the carried level) was below ``low``."""
    hi = av > high
    beyond = np.flatnonzero(hi | (av < low))
    if beyond.size == 0:
        return beyond, level
    is_hi = hi[beyond]
    was_low = np.empty_like(is_hi)
    was_low[0] = level == -1
    np.logical_not(is_hi[:-1], out=was_low[1:])
    return beyond[is_hi & was_low], 1 if is_hi[-1] else -1


def _forward_from_moment(m: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Unnormalised forward vector ``-(I - u uᵀ) M u`` from a moment ``M = Σ a a'ᵀ`` (sensor frame), or one
    per moment of stacked moments (..., 3, 3)."""
    v = m @ up
    return -(v - up * np.matmul(up, v[..., None]))


def _mount_from(up: np.ndarray, fwd: np.ndarray) -> np.ndarray:
    z = up / np.linalg.norm(up)
    x = fwd - z * float(z @ fwd)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    r_pelvis_sensor = np.stack([x, y, z])  # rows: pelvis axes in sensor coordinates
    return matrix_to_quat(r_pelvis_sensor)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two vectors, deg (NaN if either is not finite)."""
    return _angle_from_dots(float(a @ b), float(a @ a), float(b @ b))


def _dots(v: np.ndarray, fwd: np.ndarray) -> tuple[list[float], list[float]]:
    """Per row of ``v`` (K, 3): ``v·fwd`` and ``v·v`` (stacked products: the same BLAS routine on each row
    whatever K)."""
    return (np.matmul(v[:, None, :], fwd)[:, 0].tolist(), np.matmul(v[:, None, :], v[:, :, None])[:, 0, 0].tolist())


def _moved_from(v: np.ndarray, fwd: np.ndarray) -> int:
    """Of blocks with forward vectors ``v`` (K, 3, oldest first), the first of those that ran another way
    than ``fwd``: the split ``s`` (0 .. K - 1) whose blocks before it lie closest to ``fwd`` and from it on
    closest to their own mean direction, i.e. that maximises ``Σ_{j<s} u_j·f + |Σ_{j>=s} u_j|`` for the unit
    vectors ``u`` of ``v`` and ``f`` of ``fwd`` (a block without a direction counts for neither)."""
    n = np.sqrt(np.einsum("ij,ij->i", v, v))
    u = np.divide(v, n[:, None], out=np.zeros_like(v), where=n[:, None] > 0)
    f = fwd / np.linalg.norm(fwd)
    before = np.concatenate([[0.0], np.cumsum(u @ f)[:-1]])
    after = np.cumsum(u[::-1], axis=0)[::-1]
    return int(np.argmax(before + np.sqrt(np.einsum("ij,ij->i", after, after))))


def _angle_from_dots(ab: float, aa: float, bb: float) -> float:
    """:func:`_angle_deg` from the dot products ``a·b``, ``a·a``, ``b·b`` (scalar math: np.linalg.norm of a
    vector is sqrt(x @ x))."""
    c = ab / (math.sqrt(aa) * math.sqrt(bb) + 1e-300)
    if not math.isfinite(c):
        return math.nan  # (clamping would turn NaN into 180 deg: a mount "moved" by a bad moment)
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


class _UsedBlock(NamedTuple):
    """A gait block to use, as closed at a step: its sums (the layout of ``MountCalibration._blk_sum``),
    sample count, gait (a flight phase: running), steps, the step's sample (this chunk) and time, and whether
    its gait is clear (its force floor is not within ``recheck_gait_margin_g`` of ``flight_g``)."""

    sums: np.ndarray
    cnt: int
    running: bool
    rises: int
    i_step: int
    t_end: float
    clear: bool = True


def _block_moments(done: list[_UsedBlock], gyro: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed moments (K, 3, 3) in the sensor frame, specific force sums (K, 3) and the determinants of the
    mean rotations (K,; 1 without a gyroscope) of used blocks.

    Running (a flight phase: the vertical specific force nearly vanishes): braking while the vertical
    force rises. Walking (pendular): the opposite phase, so the moment flips sign. With a gyroscope the
    moment is mapped from the level frame to the sensor frame with the block's mean orientation
    ``R̄ᵀ M R̄``, and the mean vertical of the block (not the mean specific force) then serves the
    no-stillness gravity fallback. Stacked products: each block gets the same arithmetic as alone."""
    k = len(done)
    sums = np.array([b.sums for b in done])
    m = sums[:, :9].reshape(k, 3, 3)
    walking = np.array([not b.running for b in done])
    m[walking] = -m[walking]
    if not gyro:
        return m, sums[:, 9:], np.ones(k)
    cnt = np.array([max(b.cnt, 1) for b in done], dtype=np.float64)
    r_mean = sums[:, 9:].reshape(k, 3, 3) / cnt[:, None, None]
    return r_mean.transpose(0, 2, 1) @ m @ r_mean, r_mean[:, 2, :] * (G_MPS2 * cnt)[:, None], np.linalg.det(r_mean)


class MountCalibration:
    """Streaming sensor -> pelvis calibration (gravity from stillness, forward from the first strides).

    Parameters
    ----------
    params : CalibrationParams, optional
        Defaults if ``None``.
    rate_hz : float, optional
        Nominal sample rate of the stream, Hz. If ``None`` it is estimated from the first samples (a
        stream whose first timestamps are irregular then gets a wrong rate: pass it when it is known).

    Attributes
    ----------
    state_ : {"waiting_for_stillness", "gravity_known", "calibrated"}
    gravity_sensor_ : ndarray, shape (3,), or None
        Unit vector up in the sensor frame (from the latest still period before calibration).
    gravity_source_ : {"still", "gait"} or None
        Where ``gravity_sensor_`` came from: a still period (angles relative to standing), or, when the
        session has no still period, the mean specific force over ``gait_gravity_strides`` strides of
        steady gait (angles then relative to the mean gait posture).
    forward_sensor_ : ndarray, shape (3,), or None
        Unit vector anterior in the sensor frame, once calibrated.
    mount_quat_wxyz_ : ndarray, shape (4,), or None
        Sensor -> pelvis rotation, scalar first, once calibrated.
    t_calibrated_s_ : float or None
        Time of the sample that completed the calibration, s.
    forward_confidence_ : float
        Resultant length (0..1) of the per-stride forward directions so far (before calibration) or at
        calibration.
    n_strides_ : int
        Strides counted since gravity became known.
    still_intervals_ : list of (float, float)
        Still periods found so far (start, end), s.
    forward_recent_deg_ : float
        Angle between the forward direction of the last ``recheck_blocks`` gait blocks and the calibrated
        one, deg (NaN until calibrated and enough blocks).
    forward_moved_ : bool
        ``forward_recent_deg_`` exceeded ``recheck_deg`` at some point after calibration, or the forward
        direction of the last ``recheck_fast_blocks`` blocks left it by more than ``recheck_fast_deg``.
    t_forward_moved_s_ : float or None
        When it first did: the time of the step that closed the gait block it did at, s (the same whatever
        the chunking of the stream).
    forward_moved_deg_ : float
        The angle that showed it then (``forward_recent_deg_``, or that of the last ``recheck_fast_blocks``
        blocks if larger), deg (NaN before).
    t_forward_moved_from_s_ : float or None
        From when the sensor seems to have run another way, s: among the last ``recheck_blocks`` blocks
        then, the split into "the calibrated direction, then one other" that fits their forward
        directions best (:func:`_moved_from`) gives the first block that ran the other way; this is the start
        of the block before it (a block in which the sensor turned may fit either side). Earlier than
        ``t_forward_moved_s_`` by the blocks it took to show; the same whatever the chunking.
    rate_hz_ : float or None
        Sample rate estimated from the first samples, Hz.
    orientation_seed_ : dict or None
        With a gyroscope, once calibrated: a :class:`~pelvimon.dsp.orientation.PelvisOrientation` state
        holding the VQF filter that ran on this stream from its start, exactly after the sample at
        ``t_calibrated_s_``. ``PelvisOrientation(rate, mount_quat_wxyz_).restore_state(seed)`` fed from the
        next sample on gives angles at once (gyroscope bias learnt while standing, no start-up transient),
        identical whatever the chunking. The filter uses VQF's default parameters (those of
        ``OrientationParams()``).
    running_fraction_ : float
        Fraction of the strides so far that had a flight phase (running rather than walking).
    n_gaps_ : int
        Data gaps seen (a time step over 1.5 sample intervals). One longer than
        ``CalibrationParams.bridge_gap_s`` drops only the stride that holds it; gravity, the strides gathered
        so far and the gait bout are kept (the mount did not move).
    """

    # the current block of whole strides, set by _reset_block
    _pending: tuple[int, int] | None  # [i0, i1) of this chunk, not yet in the block's sums
    _mark_i: int  # sample (this chunk) at which the last stride of the block ended, -1 if none
    _snap: dict[str, Any] | None  # block sums up to the last stride end of an earlier chunk
    _skip: bool  # after a gap: samples until the next step are left out of the block
    _blk_len: int
    _blk_aligned: bool
    _blk_sum: np.ndarray  # Σ a a'ᵀ (9, row-major), then Σ R (9, with a gyroscope) or Σ a (3, without)
    _blk_cnt: int
    _blk_vmin: float
    _blk_vmax: float
    _blk_rises: int
    _blk_ok: bool

    def __init__(self, params: CalibrationParams | None = None, rate_hz: float | None = None) -> None:
        self.params = params
        self.rate_hz = rate_hz
        p = params if params is not None else CalibrationParams()
        p.validate()
        if rate_hz is not None and not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be a positive number, got {rate_hz}")
        self._p = p
        # the least determinant of a block's mean rotation for the re-check: a steady turn by a gives sinc(a / 2)^2
        half = math.radians(p.recheck_turn_deg) / 2.0
        self._turn_det_min = (math.sin(half) / half) ** 2
        self._lp: Lowpass | None = None  # the force's low-pass, once the sample rate is known
        self._probe_t: list[float] = []
        self._probe_a: list[np.ndarray] = []
        self._probe_g: list[np.ndarray | None] = []
        # still run accumulator
        self._run_n = 0
        self._run_t0 = 0.0
        self._run_t1 = 0.0
        self._run_sum = np.zeros(3)
        self._run_sumsq = np.zeros(3)
        # gait accumulators
        self._block_n = 1
        self._zi: np.ndarray | None = None
        self._last_lp: np.ndarray | None = None
        self._hyst = 0  # -1 low, +1 high, 0 unknown
        self._t_last_rise = -np.inf
        self._bout_steps = 0
        self._n_rises = 0
        self._gyro_mode: bool | None = None
        self._reset_block(ok=False)  # the current block of whole strides: sums, counts, markers
        self._mark_rises = 0  # steps of the block up to the last stride end (``_mark_i``)
        self._mark_n = 0  # steps of the stream up to that sample
        self._blocks: list[np.ndarray] = []  # signed per-block moments until calibrated
        self._block_rises: list[int] = []
        self._block_t0: list[float] = []  # when each of those blocks began, s
        self._recent: deque[np.ndarray] = deque(maxlen=p.recheck_blocks)
        self._recent_t0: deque[float] = deque(maxlen=p.recheck_blocks)
        self._all_m = np.zeros((3, 3))  # sum of every used block's signed moment (offline estimate)
        self._all_rises = 0
        self._gait_acc = np.zeros(3)
        # this chunk's per-sample rows of the block sums (the layout of ``_blk_sum``) and force norms
        self._rows = np.zeros((0, 12))
        self._av_pm = np.zeros((2, 0))
        self._n_seen = 0  # samples through the gait stage
        self._t_prev = -np.inf  # time of the last sample through the gait stage (gap detection)
        self.n_gaps_ = 0
        self._first_rest_n: int | None = None
        self._cal_index: int | None = None
        self.orientation_seed_: dict[str, Any] | None = None
        self._vqf: vqf.VQF | None = None
        self._qring: SampleRing | None = None  # sensor orientations before calibration (heading handover)
        self._q_given: np.ndarray | None = None  # orientations given with this chunk (after calibration)
        self._n_blocks = 0
        self._n_run_blocks = 0
        # results
        self.state_: CalibrationState = "waiting_for_stillness"
        self.gravity_sensor_: np.ndarray | None = None
        self.gravity_source_: str | None = None
        self.forward_sensor_: np.ndarray | None = None
        self.mount_quat_wxyz_: np.ndarray | None = None
        self.t_calibrated_s_: float | None = None
        self.forward_confidence_ = 0.0
        self.n_strides_ = 0
        self.still_intervals_: list[tuple[float, float]] = []
        self.forward_recent_deg_ = float("nan")
        self.forward_moved_ = False
        self.t_forward_moved_s_: float | None = None
        self.forward_moved_deg_ = float("nan")
        self.t_forward_moved_from_s_: float | None = None
        self.rate_hz_: float | None = None
        self._gait_rate: float | None = None  # the rate of the samples the gait part reads (see recheck_at_rate)
        self.running_fraction_ = 0.0

    # ------------------------------------------------------------------ streaming entry point
    def update(
        self, t_s: Any, acc_mps2: Any, gyr_rads: Any | None = None, q_world_sensor_wxyz: Any | None = None
    ) -> MountCalibration:
        """Feed one chunk of samples.

        Parameters
        ----------
        t_s : array_like, shape (N,)
            Sample times, s.
        acc_mps2 : array_like, shape (N, 3)
            Specific force, sensor frame, m/s².
        gyr_rads : array_like, shape (N, 3), or None
            Angular rate, sensor frame, rad/s; ``None`` for accelerometer-only streams.
        q_world_sensor_wxyz : array_like, shape (N, 4), optional
            After calibration only (ignored before): the sensor orientation of these samples from the
            orientation stage's 6D VQF (``PelvisMotion.quat_world_sensor_wxyz``, the continuation of this
            estimator's filter after the handover). The re-check then uses it instead of running its own
            VQF over the same samples.

        Returns
        -------
        MountCalibration
            ``self``; results in the attributes ending in ``_``.
        """
        t, a, g = check_chunk(t_s, acc_mps2, gyr_rads)
        self._q_given = None
        if q_world_sensor_wxyz is not None and self.state_ == "calibrated" and g is not None:
            q = np.asarray(q_world_sensor_wxyz, dtype=np.float64)
            if q.shape != (t.shape[0], 4):
                raise ValueError(f"q_world_sensor_wxyz must have shape ({t.shape[0]}, 4), got {q.shape}")
            self._q_given = q
        if t.shape[0] == 0:
            return self
        if self._lp is None:
            # Buffer the first samples to estimate the sample rate (the same whatever the chunking).
            self._probe_t.extend(t.tolist())
            self._probe_a.append(a)
            self._probe_g.append(g)
            if self.rate_hz is not None:
                rate = float(self.rate_hz)
            else:
                if len(self._probe_t) < _RATE_PROBE_N:
                    return self
                dt = np.diff(np.asarray(self._probe_t[:_RATE_PROBE_N]))
                dt = dt[dt > 0]
                if dt.size == 0:
                    raise ValueError("t_s must increase: cannot estimate the sample rate")
                rate = 1.0 / float(np.median(dt))
            tt = np.asarray(self._probe_t)
            self.rate_hz_ = rate
            self._set_gait_rate(rate)
            aa = np.concatenate(self._probe_a)
            gg: np.ndarray | None = None
            if all(x is not None for x in self._probe_g):
                gg = np.concatenate([x for x in self._probe_g if x is not None])
            self._probe_t, self._probe_a, self._probe_g = [], [], []
            self._process(tt, aa, gg)
            return self
        self._process(t, a, g)
        return self

    # ------------------------------------------------------------------ internals
    def _process(self, t: np.ndarray, a: np.ndarray, g: np.ndarray | None) -> None:
        if self._gyro_mode is None:
            self._gyro_mode = g is not None
            self._zero_sums()  # (the width of the block sums depends on the mode)
            if g is not None:
                self._vqf = vqf.VQF(1.0 / float(self.rate_hz_))  # type: ignore[arg-type]
        elif self._gyro_mode != (g is not None):
            raise ValueError(
                "gyr_rads must be given in every chunk or in none (this stream started "
                + ("with" if self._gyro_mode else "without")
                + " a gyroscope)"
            )
        self._still(t, a, g)
        self._gait(t, a, g)

    def _still(self, t: np.ndarray, a: np.ndarray, g: np.ndarray | None) -> None:
        p = self._p
        if self.state_ == "calibrated" and len(self.still_intervals_) > 1000:
            return
        quiet = np.abs(_norms(a) - G_MPS2) < p.still_acc_dev_mps2
        if g is not None:
            # (the angular rate only where the specific force is quiet: a few samples during gait)
            k = np.flatnonzero(quiet)
            quiet[k] = _norms(g[k]) < p.still_gyr_rads
        # Segment boundaries: runs of quiet samples; the first run continues the carried one.
        edges = np.flatnonzero(np.diff(quiet.astype(np.int8))) + 1
        bounds = np.concatenate([[0], edges, [quiet.size]]).tolist()
        for i0, i1 in zip(bounds[:-1], bounds[1:], strict=True):
            if not quiet[i0]:
                self._close_run()
                continue
            if self._run_n == 0 and i1 < quiet.size and self._too_short(i1 - i0, t[i0], t[i1 - 1]):
                continue  # a run that starts and ends in this chunk, too short to count: nothing to add up
            if self._run_n == 0:
                self._run_t0 = float(t[i0])
            self._run_n += i1 - i0
            seg = a[i0:i1]
            carry = np.concatenate([self._run_sum, self._run_sumsq])
            run = _seq_sum_onto(carry, np.concatenate([seg, seg * seg], axis=1))
            self._run_sum, self._run_sumsq = run[:3], run[3:]
            self._run_t1 = float(t[i1 - 1])
            if i1 < quiet.size:
                self._close_run()
        # A run still open at the chunk end is evaluated when it closes, or now if long enough already
        # (so the GUI's "stand still" prompt completes without waiting for movement).
        if self._run_n and self.gravity_source_ != "still":
            self._evaluate_run(final=False)

    def _too_short(self, n: int, t0: float, t1: float) -> bool:
        """Whether a quiet run of ``n`` samples from ``t0`` to ``t1`` (s) is too short to be standing still."""
        return n < 2 or t1 - t0 < self._p.still_s

    def _evaluate_run(self, final: bool) -> None:
        p = self._p
        if self._too_short(self._run_n, self._run_t0, self._run_t1):
            return
        mean = self._run_sum / self._run_n
        var = np.maximum(self._run_sumsq / self._run_n - mean * mean, 0.0)
        if np.sqrt(var.max()) > p.still_acc_std_mps2:
            return
        if self.state_ != "calibrated":
            self.gravity_sensor_ = mean / np.linalg.norm(mean)
            self.gravity_source_ = "still"
            if self.state_ == "waiting_for_stillness":
                self.state_ = "gravity_known"
        if final:
            self.still_intervals_.append((self._run_t0, self._run_t1))

    def _close_run(self) -> None:
        if self._run_n:
            self._evaluate_run(final=True)
        self._run_n = 0
        self._run_sum = np.zeros(3)
        self._run_sumsq = np.zeros(3)

    def _gait(self, t: np.ndarray, a: np.ndarray, g: np.ndarray | None) -> None:
        p = self._p
        lowpass = self._lp
        if lowpass is None:
            raise RuntimeError("internal: gait processing before the sample rate is known")
        raw_a, snap = a, None
        q_chunk = np.zeros((0, 4))
        was_calibrated = self.state_ == "calibrated"
        if g is not None and self._vqf is not None:
            if not was_calibrated:
                snap = self._vqf.state  # to hand VQF over, exactly at the calibration sample, to orientation
            # With a gyroscope, moments are taken in the level frame of a 6D VQF run on the sensor data, so
            # the pelvis' tilt and obliquity oscillation cannot leak the vertical force into the horizontal
            # plane; each block is mapped back to the sensor frame with its mean orientation.
            if was_calibrated and self._q_given is not None:
                out = {"quat6D": self._q_given}  # the orientation stage's filter: no second VQF run
            else:
                out = self._vqf.updateBatch(np.ascontiguousarray(g), np.ascontiguousarray(a))
            if not was_calibrated:
                if self._qring is None:
                    self._qring = self._new_qring()
                q_chunk = out["quat6D"]
            if self._first_rest_n is None and "restDetected" in out:
                rest = np.flatnonzero(out["restDetected"])
                if rest.size:
                    self._first_rest_n = self._n_seen + int(rest[0])
            q = out["quat6D"]
            rot = matrix_entries(q[:, 0], q[:, 1], q[:, 2], q[:, 3])  # r00, r01, ..., r22
            a0, a1, a2 = a[:, 0], a[:, 1], a[:, 2]
            f = np.stack(rotate_by_entries(rot, a0, a1, a2))
        else:
            rot = None
            f = a.T
        # ``f``: the specific force, one row per axis (3, N), so that the per-sample arithmetic below runs on
        # contiguous rows (level frame with a gyroscope: f = R a, element by element)
        if self._zi is None:  # (sections, 4, axes): the state of the filter along the rows of ``f``
            self._zi = lowpass.rest_state(f[:, 0])
            self._last_lp = f[:, 0].copy()
        lp, self._zi = lowpass(f, self._zi)
        d = np.empty_like(lp)  # increments of the low-passed force
        np.subtract(lp[:, 0], self._last_lp, out=d[:, 0])  # type: ignore[arg-type]
        np.subtract(lp[:, 1:], lp[:, :-1], out=d[:, 1:])
        self._last_lp = lp[:, -1].copy()
        n = t.shape[0]
        # Steps are found on the norm of the low-passed specific force (dominated by its vertical part), so
        # gait is analysed even before gravity is known (needed for the no-stillness fallback).
        av = _norms(lp.T)
        rises, self._hyst = _step_rises(av, p.step_high_g * G_MPS2, p.step_low_g * G_MPS2, self._hyst)
        # Per-sample moment contributions a a'ᵀ (and rotation matrices or forces), gathered into blocks of
        # whole strides (an even number of steps, at least block_s long) that start and end at a step; the
        # loop runs per step, not per sample.
        rows = np.empty((n, self._blk_sum.size))
        for i in range(3):
            for j in range(3):
                np.multiply(lp[i], d[j], out=rows[:, 3 * i + j])
        if rot is not None:
            for k in range(9):
                rows[:, 9 + k] = rot[k]
        else:
            rows[:, 9:] = lp.T
        self._rows = rows
        self._av_pm = np.stack([av, -av])  # the force norm and its negative: min and max in one reduction
        # Lost samples (a time step over 1.5 sample intervals): the mount did not change, so the strides
        # gathered so far, the gait bout and gravity are kept; only the block holding the gap is dropped
        # (its moment sums straddle the missing samples) and the next block starts at the next step.
        dt_max = 1.5 / float(self._gait_rate)  # type: ignore[arg-type]
        dt = np.diff(t, prepend=self._t_prev)
        if self._n_seen == 0:
            dt[0] = 0.0
        gaps = np.flatnonzero(dt > dt_max)
        self.n_gaps_ += gaps.size
        # short gaps (a lost notification or two) are bridged: the low-pass smooths over them
        gaps = gaps[dt[gaps] > p.bridge_gap_s + 1.0 / float(self._gait_rate)]  # type: ignore[arg-type]
        self._t_prev = float(t[-1])
        self._mark_i = -1
        cursor = 0
        done: list[_UsedBlock] = []  # blocks finished in this chunk, used together after the loop
        marks: list[tuple[int, int, float]] = list(zip(rises.tolist(), [1] * rises.size, t[rises].tolist(), strict=True))
        if gaps.size:
            # a gap is handled before a rise at its sample
            marks = sorted(marks + [(k, 0, 0.0) for k in gaps.tolist()])
        for r, is_rise, tr in marks:
            cursor = self._advance(cursor, r)
            if not is_rise:
                self._gap()
                continue
            skipped = False
            if self._skip:
                # after a gap the block resumes at a step an even number of steps after its last stride
                # end: the dropped part is whole strides (as many left as right steps)
                skipped = self._snap is not None and (self._n_rises - int(self._snap["n"])) % 2 == 1
                self._skip = skipped
            if skipped and tr - self._t_last_rise <= p.max_step_s:
                pass
            elif tr - self._t_last_rise > p.max_step_s:
                self._bout_steps = 0  # (re)start of gait: the first steps are not steady yet
                self._reset_block(ok=False, aligned=True)
            elif not self._blk_aligned:
                self._reset_block(ok=self._bout_steps >= p.skip_steps, aligned=True)
            elif self._blk_len >= self._block_n and self._blk_rises >= 2 and self._blk_rises % 2 == 0:
                used = self._finish_block(r, tr)
                if used is not None:
                    done.append(used)
                self._reset_block(ok=self._bout_steps >= p.skip_steps, aligned=True)
            elif self._blk_aligned and self._blk_rises >= 2 and self._blk_rises % 2 == 0:
                # a stride ends here: a later gap in this block keeps the block up to this sample
                self._mark_i, self._mark_rises, self._mark_n = r, self._blk_rises, self._n_rises
            self._t_last_rise = tr
            self._bout_steps += 1
            self._blk_rises += 0 if self._skip else 1
            self._n_rises += 1
        self.n_strides_ = self._n_rises // 2
        self._advance(cursor, n)
        self._flush_to_mark()
        self._flush_segment()
        self._rows, self._av_pm = np.empty((0, rows.shape[1])), np.empty((2, 0))  # (not kept between chunks)
        self._use_blocks(done)
        if snap is not None and g is not None and self.state_ == "calibrated" and self._cal_index is not None:
            # VQF (sensor frame, run since the start of the stream) state after the calibration sample
            k = self._cal_index - self._n_seen + 1
            seed = vqf.VQF(1.0 / float(self.rate_hz_))  # type: ignore[arg-type]
            seed.state = snap
            if k > 0:
                seed.updateBatch(np.ascontiguousarray(g[:k]), np.ascontiguousarray(raw_a[:k]))
            settled = self._first_rest_n if self._first_rest_n is not None and self._first_rest_n <= self._cal_index else None
            # the running-direction tracker run over the orientations so far (up to _HEADING_SEED_S) with the
            # mount now known: the rotation is right from the first step after the handover
            ring = self._qring
            if ring is None:
                raise RuntimeError("internal: calibrated with a gyroscope but no orientations kept")
            q_hist = np.concatenate([ring.get(ring.first, ring.n_total), q_chunk[:k]])[-ring.capacity :]
            self.orientation_seed_ = {
                "version": _ORIENT_STATE_VERSION,
                "n": self._cal_index + 1,
                "n_settled": settled,
                "vqf": seed.state,
                **heading_state(q_hist, self.mount_quat_wxyz_, float(self.rate_hz_)),  # type: ignore[arg-type]
            }
        if self._qring is not None:
            if self.state_ == "calibrated":
                self._qring = None  # needed only for the handover
            else:
                self._qring.append(q_chunk)
        self._n_seen += n

    def recheck_at_rate(self, rate_hz: float) -> MountCalibration:
        """After calibration: from the next call on, the re-check is given samples at ``rate_hz`` (means of
        consecutive samples of the stream, fewer to process: ``GaitPipeline`` does so): the low-pass and the
        block length are set for that rate, and the block in progress is dropped (the next starts at a step).
        The gravity, the forward direction and the recent blocks stay. With a gyroscope, give
        ``q_world_sensor_wxyz`` with every chunk from then on (this estimator's VQF runs at the stream's rate)."""
        if self.state_ != "calibrated" or self._lp is None:
            raise RuntimeError("the re-check's rate is set after the calibration completed")
        self._set_gait_rate(float(rate_hz))
        self._zi = None  # (starts at rest on the next sample)
        self._reset_block(ok=False)
        return self

    def _set_gait_rate(self, rate: float) -> None:
        """The rate of the samples the gait part reads, and the force's low-pass and block length for it."""
        self._gait_rate = rate
        self._lp = Lowpass(butter_lowpass_sos(2, min(self._p.lowpass_hz, 0.45 * rate), rate))
        self._block_n = max(2, int(round(self._p.block_s * rate)))

    def _new_qring(self) -> SampleRing:
        """The ring of the sensor orientations before calibration (the last ``_HEADING_SEED_S``)."""
        return SampleRing(max(2, int(round(_HEADING_SEED_S * float(self.rate_hz_)))), 4)  # type: ignore[arg-type]

    def _advance(self, i0: int, i1: int) -> int:
        """Add samples [i0, i1) to the current block; drop blocks that grow too long without a stride end."""
        if self._skip:
            return i1  # after a gap, until the block resumes: neither summed nor counted
        max_n = 3 * self._block_n
        while i1 - i0 >= max_n - self._blk_len:
            cut = i0 + max_n - self._blk_len
            self._reset_block(ok=False, aligned=False)
            i0 = cut
        if i1 > i0:
            # Consecutive segments are summed together when the block is read (:meth:`_finish_block`) or
            # the chunk ends (:meth:`_flush_segment`): the same additions in the same order as one sum per
            # segment, with a few calls per block instead of a few per step.
            pending = self._pending
            if pending is not None and pending[1] == i0:
                self._pending = (pending[0], i1)
            else:
                self._flush_segment()
                self._pending = (i0, i1)
            self._blk_len += i1 - i0
        return i1

    def _flush_segment(self) -> None:
        """Add the pending samples of this chunk to the block's sums."""
        if self._pending is None:
            return
        i0, i1 = self._pending
        self._pending = None
        self._blk_sum = _seq_sum_onto(self._blk_sum, self._rows[i0:i1])  # (each row is summed once)
        self._blk_cnt += i1 - i0
        lo, neg_hi = self._av_pm[:, i0:i1].min(axis=1).tolist()
        self._blk_vmin = min(self._blk_vmin, lo)
        self._blk_vmax = max(self._blk_vmax, -neg_hi)

    def _flush_to_mark(self) -> None:
        """If a stride of the current block ended in this chunk, sum the block up to that sample and keep
        those sums (:attr:`_snap`) for a gap later in the block."""
        if self._mark_i < 0 or self._pending is None:
            return
        p0, p1 = self._pending
        self._pending = (p0, self._mark_i) if self._mark_i > p0 else None
        self._flush_segment()
        self._snap = {
            "sum": self._blk_sum.tolist(), "cnt": self._blk_cnt,
            "vmin": self._blk_vmin, "vmax": self._blk_vmax, "rises": self._mark_rises, "n": self._mark_n,
        }
        self._pending = (self._mark_i, p1) if p1 > self._mark_i else None
        self._mark_i = -1

    def _gap(self) -> None:
        """Samples were lost before the current sample.

        The block goes back to the end of its last whole stride (the stride holding the gap is dropped)
        and resumes at the next step: an even number of further steps again holds as many left as right
        steps, so the block's medio-lateral force still cancels. Nothing else restarts (gravity, the
        strides gathered so far and the gait bout are kept): the sensor did not move on the body."""
        if not self._blk_aligned:
            return
        self._flush_to_mark()
        snap = self._snap
        self._pending = None
        if snap is None:
            self._zero_sums()
        else:
            self._blk_sum = np.asarray(snap["sum"], dtype=np.float64)
            self._blk_cnt = int(snap["cnt"])
            self._blk_vmin, self._blk_vmax = float(snap["vmin"]), float(snap["vmax"])
            self._blk_rises = int(snap["rises"])
        self._skip = True

    def _reset_block(self, ok: bool, aligned: bool = False) -> None:
        """Start an empty block (dropping the samples of the old one not yet summed)."""
        self._pending = None
        self._mark_i = -1
        self._snap = None
        self._skip = False
        self._blk_len = 0
        self._blk_aligned = aligned
        self._zero_sums()
        self._blk_ok = ok

    def _zero_sums(self) -> None:
        """The block's sums, count, force range and steps, empty."""
        self._blk_sum = np.zeros(18 if self._gyro_mode else 12)
        self._blk_cnt = 0
        self._blk_vmin = np.inf
        self._blk_vmax = -np.inf
        self._blk_rises = 0

    def _finish_block(self, r: int, t_end: float) -> _UsedBlock | None:
        """Close the current block at the step at sample ``r`` of this chunk (time ``t_end``); a block to use
        is returned for :meth:`_use_blocks`, with its sums, sample count, gait and steps."""
        self._flush_segment()
        p = self._p
        used = (
            self._blk_ok
            and self._blk_rises >= p.min_block_steps
            and self._blk_vmax - self._blk_vmin > p.min_swing_g * G_MPS2
        )
        if not used:
            return None
        running = self._blk_vmin < p.flight_g * G_MPS2
        clear = abs(self._blk_vmin - p.flight_g * G_MPS2) >= p.recheck_gait_margin_g * G_MPS2
        return _UsedBlock(self._blk_sum, self._blk_cnt, running, self._blk_rises, r, t_end, clear)

    def _use_blocks(self, done: list[_UsedBlock]) -> None:
        """Use the blocks finished in this chunk, in order: their moments are worked out together, then each
        block counts towards the calibration until it completes, and the rest go to the re-check."""
        if not done:
            return
        m, acc_sum, det = _block_moments(done, bool(self._gyro_mode))
        self._count_blocks(m, done)  # (read by neither _use_block nor _recheck)
        t0 = [b.t_end - b.cnt / float(self._gait_rate) for b in done]  # type: ignore[arg-type]
        k = 0
        while k < len(done) and self.state_ != "calibrated":
            b = done[k]
            self._use_block(m[k], acc_sum[k], b.t_end, b.rises, t0[k])
            if self.state_ == "calibrated":
                self._cal_index = self._n_seen + b.i_step
            k += 1
        # the re-check leaves out blocks with a turn (recheck_turn_deg) and those whose gait is not clear
        keep = [i for i in range(k, len(done)) if det[i] >= self._turn_det_min and done[i].clear]
        if keep:
            self._recheck(m[keep], [done[i].t_end for i in keep], [t0[i] for i in keep])

    def _count_blocks(self, m: np.ndarray, done: list[_UsedBlock]) -> None:
        """Count used blocks with moments ``m`` (K, 3, 3) towards the gait shares and the offline estimate."""
        self._n_blocks += len(done)
        self._n_run_blocks += sum(b.running for b in done)
        self.running_fraction_ = self._n_run_blocks / self._n_blocks
        self._all_m = _seq_sum(self._all_m, m)
        self._all_rises += sum(b.rises for b in done)

    def _use_block(self, m: np.ndarray, acc_sum: np.ndarray, t_end: float, rises: int, t0: float) -> None:
        """One more block towards the calibration (before it completes); it began at ``t0``."""
        p = self._p
        self._blocks.append(m.copy())
        self._block_t0.append(t0)
        self._block_rises.append(rises)
        self._gait_acc = self._gait_acc + acc_sum
        strides = sum(self._block_rises) / 2.0
        if self.gravity_sensor_ is None or self.gravity_source_ == "gait":
            if strides >= p.gait_gravity_strides:
                # No still period: the mean specific force over whole strides of steady gait points up.
                self.gravity_sensor_ = self._gait_acc / np.linalg.norm(self._gait_acc)
                self.gravity_source_ = "gait"
                self.state_ = "gravity_known"
        up = self.gravity_sensor_
        if up is None:
            return
        vs = [_forward_from_moment(x, up) for x in self._blocks]
        norms = [float(np.linalg.norm(v)) for v in vs]
        if min(norms) <= 0:
            return
        unit_sum = _vsum([v / nv for v, nv in zip(vs, norms, strict=True)])
        self.forward_confidence_ = float(np.linalg.norm(unit_sum)) / len(vs)
        if len(vs) >= 2 and strides >= p.forward_strides and self.forward_confidence_ >= p.min_confidence:
            total = _vsum(vs)
            self.forward_sensor_ = total / np.linalg.norm(total)
            self.mount_quat_wxyz_ = _mount_from(up, self.forward_sensor_)
            self.t_calibrated_s_ = t_end
            self.state_ = "calibrated"
            self._recent.extend(self._blocks)
            self._recent_t0.extend(self._block_t0)

    def _recheck(self, m: np.ndarray, t_end: list[float], t0: list[float]) -> None:
        """After calibration: blocks with moments ``m`` (K, 3, 3), begun at times ``t0`` and closed at the
        steps at times ``t_end``, join the recent ones, and after each the forward direction of the last
        ``recheck_blocks`` blocks is compared with the calibrated one, and so is that of each of the last
        ``recheck_fast_blocks``; when it first moved, :func:`_moved_from` over the window dates it back.

        Per block this is ``_angle_deg(_forward_from_moment(_vsum(recent), up), fwd)`` (the sum of the recent
        moments from the oldest on); here for all K blocks together, with the same arithmetic: each window
        summed in order, leading zeros where fewer blocks came before (+0.0 leaves a sum unchanged), and
        stacked matrix products that run the same BLAS routine on each block as one product would."""
        p = self._p
        up, fwd = self.gravity_sensor_, self.forward_sensor_
        if up is None or fwd is None:
            raise RuntimeError("internal: calibrated without gravity and forward")
        w, k, n0 = p.recheck_blocks, m.shape[0], len(self._recent)
        m = m.copy()  # (kept in the recent blocks)
        seq = np.concatenate([np.zeros((w - 1, 3, 3)), *([np.array(self._recent)] if n0 else []), m])
        t0_held = [*self._recent_t0, *t0]  # (when the blocks held, seq[w - 1 :], began)
        self._recent.extend(m)
        self._recent_t0.extend(t0)
        # window after new block i: seq[n0 + i + j], j = 0 .. w-1 (the zeros above included), summed over j
        # (the short window: its last ws of those, j = w-ws .. w-1)
        ws = min(p.recheck_fast_blocks, w)
        total = seq[n0 + np.arange(w)[:, None] + np.arange(k)].sum(axis=0)
        short = seq[n0 + (w - ws) + np.arange(ws)[:, None] + np.arange(k)].sum(axis=0)
        dot_ff = float(fwd @ fwd)
        (dot_rf, dot_rr), (dot_sf, dot_ss) = (_dots(_forward_from_moment(s, up), fwd) for s in (total, short))
        # each block's own angle (the blocks held: seq[w - 1 :]); new block i is held block n0 + i
        own_fwd = _forward_from_moment(seq[w - 1 :], up)
        dot_bf, dot_bb = _dots(own_fwd, fwd)
        own = [_angle_from_dots(a, b, dot_ff) for a, b in zip(dot_bf, dot_bb, strict=True)]
        for i in range(k):
            if min(n0 + i + 1, w) >= min(w, 3):
                self.forward_recent_deg_ = _angle_from_dots(dot_rf[i], dot_rr[i], dot_ff)
            if self.forward_moved_:
                continue
            # the short window only when every one of its blocks stands that far off: a sensor that turned shows
            # in each block after it, a block whose gait was taken for the other (its moment then points
            # backwards) or that held a turn shows alone
            fast = math.nan
            if n0 + i + 1 >= ws and min(own[n0 + i + 1 - ws : n0 + i + 1]) > p.recheck_fast_deg:
                fast = _angle_from_dots(dot_sf[i], dot_ss[i], dot_ff)
            if self.forward_recent_deg_ > p.recheck_deg or fast > p.recheck_fast_deg:
                self.forward_moved_ = True
                self.t_forward_moved_s_ = float(t_end[i])
                self.forward_moved_deg_ = max(a for a in (self.forward_recent_deg_, fast) if math.isfinite(a))
                first = max(0, n0 + i + 1 - w)  # the blocks of the window then: held blocks first .. n0 + i
                s = first + _moved_from(own_fwd[first : n0 + i + 1], fwd)
                self.t_forward_moved_from_s_ = float(t0_held[max(first, s - 1)])

    # ------------------------------------------------------------------ state
    _ARRAYS = ("_zi", "_last_lp", "_blk_sum", "_gait_acc", "_all_m", "gravity_sensor_", "forward_sensor_", "mount_quat_wxyz_")
    _SCALARS = (
        "_block_n", "_hyst", "_bout_steps", "_n_rises", "_blk_len", "_blk_aligned", "_blk_rises", "_blk_ok",
        "_all_rises", "_blk_cnt", "gravity_source_", "_gyro_mode",
        "_n_seen", "n_gaps_", "_snap", "_skip", "_first_rest_n", "_cal_index", "orientation_seed_",
        "_n_blocks", "_n_run_blocks", "_run_n", "_run_t0", "_run_t1", "state_", "t_calibrated_s_",
        "forward_confidence_", "n_strides_", "forward_moved_", "rate_hz_", "running_fraction_",
    )
    _FLOATS_INF = ("_t_last_rise", "_blk_vmin", "_blk_vmax", "forward_recent_deg_", "_t_prev")

    def save_state(self) -> dict[str, Any]:
        """Everything needed to continue, as plain data (floats, ints, bools, strings, lists, None)."""
        d: dict[str, Any] = {"version": _STATE_VERSION, "_sos": None if self._lp is None else self._lp.sos.tolist()}
        for k in self._ARRAYS:
            v = getattr(self, k)
            d[k] = None if v is None else np.asarray(v).tolist()
        for k in self._SCALARS:
            v = getattr(self, k)
            d[k] = v.item() if isinstance(v, np.generic) else v
        for k in self._FLOATS_INF:
            v = float(getattr(self, k))
            d[k] = None if not np.isfinite(v) else v
        d["_run_sum"] = self._run_sum.tolist()
        d["_run_sumsq"] = self._run_sumsq.tolist()
        d["_probe_t"] = list(self._probe_t)
        d["_probe_a"] = np.concatenate(self._probe_a).tolist() if self._probe_a else None
        has_g = bool(self._probe_g) and all(x is not None for x in self._probe_g)
        d["_probe_g"] = np.concatenate(self._probe_g).tolist() if has_g else None  # type: ignore[arg-type]
        d["_blocks"] = [m.tolist() for m in self._blocks]
        d["_block_t0"] = list(self._block_t0)
        d["_recent_t0"] = list(self._recent_t0)
        d["t_forward_moved_from_s_"] = self.t_forward_moved_from_s_
        d["_block_rises"] = list(self._block_rises)
        d["_recent"] = [m.tolist() for m in self._recent]
        d["t_forward_moved_s_"] = self.t_forward_moved_s_
        d["_gait_rate"] = self._gait_rate
        d["forward_moved_deg_"] = None if math.isnan(self.forward_moved_deg_) else self.forward_moved_deg_
        d["still_intervals_"] = [list(x) for x in self.still_intervals_]
        d["_vqf"] = None if self._vqf is None else self._vqf.state
        ring = self._qring
        d["_qring"] = None if ring is None else {"first": ring.first, "q": ring.get(ring.first, ring.n_total).tolist()}
        return d

    def restore_state(self, d: dict[str, Any]) -> MountCalibration:
        """Continue from :meth:`save_state` output (of an estimator with the same parameters)."""
        if not isinstance(d, dict) or d.get("version") != _STATE_VERSION:
            raise ValueError("not a MountCalibration state (missing or unknown 'version')")
        try:
            for k in self._ARRAYS:
                setattr(self, k, None if d[k] is None else np.asarray(d[k], dtype=np.float64))
            self._lp = None if d["_sos"] is None else Lowpass(np.asarray(d["_sos"], dtype=np.float64))
            for k in self._SCALARS:
                setattr(self, k, d[k])
            for k in self._FLOATS_INF:
                default = -np.inf if k in ("_t_last_rise", "_blk_vmax", "_t_prev") else np.inf
                if k == "forward_recent_deg_":
                    default = float("nan")
                setattr(self, k, default if d[k] is None else float(d[k]))
            self._run_sum = np.asarray(d["_run_sum"], dtype=np.float64)
            self._run_sumsq = np.asarray(d["_run_sumsq"], dtype=np.float64)
            self._probe_t = list(d["_probe_t"])
            pa = d["_probe_a"]
            self._probe_a = [] if pa is None else [np.asarray(pa, dtype=np.float64).reshape(-1, 3)]
            pg = d["_probe_g"]
            self._probe_g = [] if pa is None else [None if pg is None else np.asarray(pg, dtype=np.float64).reshape(-1, 3)]
            self._blocks = [np.asarray(m, dtype=np.float64) for m in d["_blocks"]]
            self._block_rises = [int(x) for x in d["_block_rises"]]
            self._recent = deque((np.asarray(m, dtype=np.float64) for m in d["_recent"]), maxlen=self._p.recheck_blocks)
            self.still_intervals_ = [(float(a), float(b)) for a, b in d["still_intervals_"]]
            # (not in states saved before the move was timed)
            moved_t, moved_deg = d.get("t_forward_moved_s_"), d.get("forward_moved_deg_")
            self.t_forward_moved_s_ = None if moved_t is None else float(moved_t)
            self.forward_moved_deg_ = float("nan") if moved_deg is None else float(moved_deg)
            # (states saved before the move's start was estimated: the blocks' starts unknown, NaN)
            self._block_t0 = [float(x) for x in d.get("_block_t0", [math.nan] * len(self._blocks))]
            recent_t0 = d.get("_recent_t0", [math.nan] * len(self._recent))
            self._recent_t0 = deque((float(x) for x in recent_t0), maxlen=self._p.recheck_blocks)
            moved_from = d.get("t_forward_moved_from_s_")
            self.t_forward_moved_from_s_ = None if moved_from is None else float(moved_from)
            gait_rate = d.get("_gait_rate", self.rate_hz_)  # (states saved before the re-check had a rate)
            self._gait_rate = None if gait_rate is None else float(gait_rate)
            self._qring = None
            if d["_qring"] is not None and self.rate_hz_ is not None:
                self._qring = self._new_qring()
                self._qring.n_total = int(d["_qring"]["first"])
                self._qring.append(np.asarray(d["_qring"]["q"], dtype=np.float64).reshape(-1, 4))
            self._vqf = None
            if d["_vqf"] is not None:
                self._vqf = vqf.VQF(1.0 / float(self.rate_hz_))  # type: ignore[arg-type]
                self._vqf.state = d["_vqf"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"MountCalibration state is incomplete or malformed ({e})") from None
        return self


def calibrate_offline(
    t_s: Any, acc_mps2: Any, gyr_rads: Any | None = None, params: CalibrationParams | None = None
) -> MountResult:
    """Calibrate from a whole recording: gravity as in streaming, forward from every usable gait block of
    the recording (not only the first strides).

    Parameters
    ----------
    t_s : array_like, shape (N,)
        Sample times, s.
    acc_mps2 : array_like, shape (N, 3)
        Specific force, sensor frame, m/s².
    gyr_rads : array_like, shape (N, 3), or None
        Angular rate, sensor frame, rad/s.
    params : CalibrationParams, optional

    Returns
    -------
    MountResult
    """
    cal = MountCalibration(params).update(t_s, acc_mps2, gyr_rads)
    fwd = cal.forward_sensor_
    mount = cal.mount_quat_wxyz_
    n_str = cal.n_strides_
    if cal.state_ == "calibrated" and cal.gravity_sensor_ is not None:
        v = _forward_from_moment(cal._all_m, cal.gravity_sensor_)
        if np.linalg.norm(v) > 0:
            fwd = v / np.linalg.norm(v)
            mount = _mount_from(cal.gravity_sensor_, fwd)
            n_str = cal._all_rises // 2
    return MountResult(
        state=cal.state_,
        gravity_sensor=cal.gravity_sensor_,
        forward_sensor=fwd,
        mount_quat_wxyz=mount,
        forward_confidence=cal.forward_confidence_,
        n_strides=n_str,
        still_intervals=list(cal.still_intervals_),
        t_calibrated_s=cal.t_calibrated_s_,
    )
