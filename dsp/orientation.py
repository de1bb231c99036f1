"""Pelvis orientation: tilt, obliquity and rotation per sample from a calibrated sacral IMU.

The sensor samples are rotated into the pelvis frame with the mount quaternion from
:mod:`pelvimon.dsp.calibration`, fused with the 6D VQF filter (gyroscope + accelerometer, no magnetometer:
treadmill motors disturb it), and the world-to-pelvis rotation is split in the design's Baker (2001) order

    R_world_pelvis = Rz(rotation) · Rx(obliquity) · Ry(tilt)

with world z up and world x the running direction. A 6D filter has no absolute heading and its heading
drifts slowly, so the running direction is tracked causally as a zero-DC-lag low-pass of the pelvis
heading (of its unit vector, so there is no angle wrapping), far below the stride frequency: pelvic
rotation is the heading minus that running direction and oscillates around 0. Tilt and obliquity do not
depend on heading.

Frames: pelvis x anterior, y left, z superior; the pelvis frame is defined by the calibration so that the
standing posture has tilt 0 and obliquity 0. Quaternions are scalar first ``[w, x, y, z]``; ``q_a_b``
rotates b-frame vectors into frame a.

Entry points (as in vqf): :class:`PelvisOrientation` (streaming, causal, per chunk),
:func:`offline_pelvis_orientation` (whole recording, acausal) and :func:`pelvis_angles_from_quat`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import vqf

from ._inputs import check_chunk
from ._lowpass import Lowpass, butter_lowpass_sos
from ._orient_quat import check_unit_quat, matrix_entries, quat_multiply, quat_to_matrix, rotate_by_entries

__all__ = [
    "OrientationParams",
    "PelvisMotion",
    "PelvisOrientation",
    "heading_state",
    "offline_pelvis_orientation",
    "pelvis_angles_from_quat",
]

_STATE_VERSION = 3
"""3: the heading filter's state is that of :class:`._lowpass.Lowpass`, per pass (2, sections, 4, vector
component)."""


@dataclass(frozen=True)
class OrientationParams:
    """Parameters of :class:`PelvisOrientation` (frozen).

    Attributes
    ----------
    heading_cutoff_hz : float
        Cut-off of the Butterworth low-pass ``B`` that tracks the running direction from the pelvis
        heading, Hz. The tracker is ``2B - B·B`` (``B`` applied once and twice), which has zero lag at DC,
        so a steadily drifting 6D heading is followed without offset. Must sit well below the stride
        frequency (0.7-1.6 Hz): at 0.15 Hz, 4th order, a 0.8 Hz stride oscillation leaks about 0.25 % into
        the running direction.
    heading_order : int
        Butterworth order of that low-pass (even numbers only).
    turn_deg, turn_s, turn_settle_s : float
        A turn: the pelvis heading stays more than ``turn_deg`` from the tracked running direction for
        ``turn_s`` (longer than its rotation in the stride ever holds it there). The tracker then restarts on
        the heading, instead of taking seconds to follow a U-turn, and again ``turn_settle_s`` later on the
        mean heading since (the rotation in the stride averaged out). ``turn_s`` 0: never restarts. The
        rotation is NaN wherever the heading is more than ``turn_deg`` from the running direction.
    warmup_s : float
        Samples in the first ``warmup_s`` after start or :meth:`PelvisOrientation.reset` are flagged
        invalid while the filter settles, s.
    settle_s : float
        If the stream starts (or restarts after :meth:`PelvisOrientation.reset`) in motion, VQF's first
        inclination comes from a disturbed accelerometer sample and needs a few ``tau_acc_s`` to
        converge: samples stay invalid until VQF has detected rest once or ``settle_s`` has passed, s.
    tau_acc_s : float
        VQF accelerometer time constant ``tauAcc``, s.
    motion_bias_estimation : bool
        VQF gyroscope bias estimation during motion.
    rest_bias_estimation : bool
        VQF gyroscope bias estimation at rest.
    """

    heading_cutoff_hz: float = 0.15
    heading_order: int = 4
    turn_deg: float = 30.0
    turn_s: float = 0.4
    turn_settle_s: float = 1.0
    warmup_s: float = 0.5
    settle_s: float = 10.0
    tau_acc_s: float = 3.0
    motion_bias_estimation: bool = True
    rest_bias_estimation: bool = True

    def validate(self, rate_hz: float) -> None:
        """Raise ``ValueError`` with a one-line reason if the parameters do not fit ``rate_hz``."""
        if not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be a positive number, got {rate_hz}")
        if not 0 < self.heading_cutoff_hz < 0.5 * rate_hz:
            raise ValueError(f"heading_cutoff_hz must be in (0, {0.5 * rate_hz}) Hz, got {self.heading_cutoff_hz}")
        if self.heading_order < 2 or self.heading_order % 2:
            raise ValueError(f"heading_order must be an even number >= 2, got {self.heading_order}")
        if not 0 < self.turn_deg < 180 or not self.turn_s >= 0 or not self.turn_settle_s >= 0:
            raise ValueError(f"turn_deg must be in (0, 180) deg, turn_s and turn_settle_s >= 0 s, got {self.turn_deg}, "
                             f"{self.turn_s}, {self.turn_settle_s}")
        if self.warmup_s < 0 or self.settle_s < 0 or self.tau_acc_s <= 0:
            raise ValueError("warmup_s and settle_s must be >= 0 and tau_acc_s > 0")


@dataclass(frozen=True, eq=False)
class PelvisMotion:
    """One chunk of per-sample pelvis orientation results.

    Attributes
    ----------
    t_s : ndarray, shape (N,)
        Sample times, s (as given).
    tilt_deg, obliquity_deg, rotation_deg : ndarray, shape (N,)
        Pelvis angles in the Baker order, deg. Tilt > 0 anterior; obliquity > 0 lifts the left side;
        rotation > 0 turns the pelvis to the left of the running direction. NaN where not available
        (no gyroscope); the rotation also NaN in a turn (more than ``OrientationParams.turn_deg`` from the
        running direction).
    acc_pelvis_mps2 : ndarray, shape (N, 3)
        Specific force in the pelvis frame (x anterior, y left, z superior), m/s².
    acc_level_mps2 : ndarray, shape (N, 3)
        Specific force in a heading-free level frame, m/s²: x the current running direction (horizontal),
        y left (horizontal), z up. Without a gyroscope this is the calibrated pelvis frame (level when
        standing).
    gyr_pelvis_rads : ndarray, shape (N, 3), or None
        Angular rate in the pelvis frame, rad/s; ``None`` without a gyroscope.
    valid : ndarray, shape (N,), bool
        The angles are meaningful: gyroscope present, ``warmup_s`` passed, and the filter has settled (a
        rest was detected since the start, or ``settle_s`` passed).
    quat_world_sensor_wxyz : ndarray, shape (N, 4), or None
        The sensor orientation of the 6D VQF (``quat6D``, scalar first) the angles come from; ``None``
        without a gyroscope. The mount re-check of the calibration reads it instead of running its own
        filter.
    """

    t_s: np.ndarray
    tilt_deg: np.ndarray
    obliquity_deg: np.ndarray
    rotation_deg: np.ndarray
    acc_pelvis_mps2: np.ndarray
    acc_level_mps2: np.ndarray
    gyr_pelvis_rads: np.ndarray | None
    valid: np.ndarray
    quat_world_sensor_wxyz: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    def slice(self, a: int, b: int) -> PelvisMotion:
        """Samples ``a:b`` (views)."""
        gyr, q = self.gyr_pelvis_rads, self.quat_world_sensor_wxyz
        return PelvisMotion(self.t_s[a:b], self.tilt_deg[a:b], self.obliquity_deg[a:b], self.rotation_deg[a:b],
                            self.acc_pelvis_mps2[a:b], self.acc_level_mps2[a:b], None if gyr is None else gyr[a:b],
                            self.valid[a:b], None if q is None else q[a:b])  # fmt: skip

    @staticmethod
    def unknown(t_s: np.ndarray, gyro: bool) -> PelvisMotion:
        """Samples at ``t_s`` whose pelvis frame is not known (after a moved sensor, until its mounting is
        found again): NaN, not valid (``gyro``: with a gyroscope's rates and orientations, NaN too)."""
        n = t_s.shape[0]
        nan1, nan3 = np.full(n, np.nan), np.full((n, 3), np.nan)
        return PelvisMotion(t_s, nan1, nan1.copy(), nan1.copy(), nan3, nan3.copy(), nan3.copy() if gyro else None,
                            np.zeros(n, dtype=bool), np.full((n, 4), np.nan) if gyro else None)

    @staticmethod
    def concat(parts: list[PelvisMotion]) -> PelvisMotion:
        """Join consecutive chunks into one (gyroscope rates ``None`` if any chunk has none)."""
        if not parts:
            raise ValueError("PelvisMotion.concat needs at least one chunk")
        gyr = None
        if all(p.gyr_pelvis_rads is not None for p in parts):
            gyr = np.concatenate([p.gyr_pelvis_rads for p in parts])  # type: ignore[misc]
        q = None
        if all(p.quat_world_sensor_wxyz is not None for p in parts):
            q = np.concatenate([p.quat_world_sensor_wxyz for p in parts])  # type: ignore[misc]
        return PelvisMotion(
            t_s=np.concatenate([p.t_s for p in parts]),
            tilt_deg=np.concatenate([p.tilt_deg for p in parts]),
            obliquity_deg=np.concatenate([p.obliquity_deg for p in parts]),
            rotation_deg=np.concatenate([p.rotation_deg for p in parts]),
            acc_pelvis_mps2=np.concatenate([p.acc_pelvis_mps2 for p in parts]),
            acc_level_mps2=np.concatenate([p.acc_level_mps2 for p in parts]),
            gyr_pelvis_rads=gyr,
            valid=np.concatenate([p.valid for p in parts]),
            quat_world_sensor_wxyz=q,
        )


def _baker_radians(q_wxyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tilt, obliquity, rotation) in rad of ``R = Rz(rot) Rx(obl) Ry(tilt)`` from quaternions (..., 4)."""
    r = matrix_entries(q_wxyz[..., 0], q_wxyz[..., 1], q_wxyz[..., 2], q_wxyz[..., 3])
    tilt, obliquity = _tilt_obliquity(r)
    return tilt, obliquity, np.arctan2(-r[1], r[4])


def _tilt_obliquity(r: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Tilt and obliquity (rad) of the rotation matrix entries ``r`` (:func:`matrix_entries`)."""
    return np.arctan2(-r[6], r[8]), np.arcsin(np.clip(r[7], -1.0, 1.0))


def pelvis_angles_from_quat(q_world_pelvis_wxyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split pelvis orientations into the design's Baker angles.

    Parameters
    ----------
    q_world_pelvis_wxyz : ndarray, shape (N, 4) or (4,)
        Unit quaternions (scalar first) rotating pelvis-frame vectors into the world frame (z up,
        x running direction).

    Returns
    -------
    tilt_deg, obliquity_deg, rotation_deg : ndarray, shape (N,) (or scalars for one quaternion)
        Angles with ``R_world_pelvis = Rz(rotation) · Rx(obliquity) · Ry(tilt)``, deg; obliquity in
        [-90, 90], tilt and rotation in (-180, 180].
    """
    q = np.asarray(q_world_pelvis_wxyz, dtype=np.float64)
    if q.shape[-1:] != (4,) or q.ndim > 2:
        raise ValueError(f"q_world_pelvis_wxyz must have shape (N, 4) or (4,), got {q.shape}")
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    tilt, obl, rot = _baker_radians(q)
    return np.degrees(tilt), np.degrees(obl), np.degrees(rot)


def _rotate(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``r @ v[k]`` for every row, written out so each element is computed the same way whatever N."""
    out = np.empty((v.shape[0], 3))  # C order: vqf needs contiguous rows
    for i in range(3):
        out[:, i] = r[i, 0] * v[:, 0] + r[i, 1] * v[:, 1] + r[i, 2] * v[:, 2]
    return out


def _heading_sos(params: OrientationParams, rate_hz: float) -> np.ndarray:
    return butter_lowpass_sos(params.heading_order, params.heading_cutoff_hz, rate_hz)


def _turn_rule(params: OrientationParams, rate_hz: float) -> tuple[float, int, int]:
    """The ``turn`` argument of :func:`_track_turns` for these parameters."""
    n = (int(round(params.turn_s * rate_hz)), int(round(params.turn_settle_s * rate_hz)))
    return math.cos(math.radians(params.turn_deg)), *n


_BLOCK_N = 16384
"""Long chunks are processed in blocks of this many samples (one block per chunk of an analysis: fewer calls
cost less than smaller temporaries save, docs/performance.md); every operation is per sample or carries its
state, so the blocking does not change a bit of the results."""


def _world_block(
    q: np.ndarray, acc_p: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tilt and obliquity (rad), pelvis heading and world-frame specific force of pelvis orientations ``q``
    (B, 4).

    The rotation matrix entries are those of :func:`quat_to_matrix`, tilt and obliquity those of
    :func:`_baker_radians` (both by :func:`_tilt_obliquity`). Returns tilt, obliquity (B,), the heading as a unit
    vector (2, B) (:func:`_heading_unit`) and the world-frame specific force x, y, z (B,).
    """
    r = matrix_entries(q[:, 0], q[:, 1], q[:, 2], q[:, 3])
    tilt, obliquity = _tilt_obliquity(r)
    acc_wx, acc_wy, acc_wz = rotate_by_entries(r, acc_p[:, 0], acc_p[:, 1], acc_p[:, 2])
    return tilt, obliquity, _heading_unit(r[1], r[4]), acc_wx, acc_wy, acc_wz


def _heading_unit(r01: np.ndarray, r11: np.ndarray) -> np.ndarray:
    """The pelvis heading as a unit vector (2, B): cos and sin of the Baker rotation
    ``arctan2(-r01, r11)``, which are ``(r11, -r01) / sqrt(r01² + r11²)`` (the second column of
    ``Rz(rot) Rx(obl) Ry(tilt)`` is ``cos(obl) (-sin rot, cos rot, ·)``); without trigonometry. Where the
    heading is not defined (pelvis x axis vertical: both entries 0) the vector is 0 and does not move the
    running direction."""
    norm = np.sqrt(r01 * r01 + r11 * r11)  # (entries of a rotation matrix: no overflow, as hypot would guard)
    head = np.zeros((2, r01.shape[0]))
    np.divide(r11, norm, out=head[0], where=norm > 0)
    np.divide(r01, norm, out=head[1], where=norm > 0)
    np.negative(head[1], out=head[1])
    return head


def _level_block(
    angles: tuple[np.ndarray, ...], run: np.ndarray, out: dict[str, np.ndarray], b0: int, b1: int,
    turn_deg: float = 180.0,
) -> None:
    """Write the angles (deg, rotation relative to the running direction) and the level-frame specific
    force of samples ``b0:b1`` into the output arrays ``out``; ``run`` (2, B) is the running direction as
    a vector of any length (:func:`_track_heading`).

    The rotation is the angle from the running direction to the heading, ``arctan2(run × head,
    run · head)``, in (-180, 180] deg; NaN beyond ``turn_deg`` either way (a turn, not a rotation of the
    pelvis in the stride)."""
    tilt, obl, head, acc_wx, acc_wy, acc_wz = angles
    rx, ry = run[0], run[1]
    rel = np.arctan2(rx * head[1] - ry * head[0], rx * head[0] + ry * head[1])
    norm = np.sqrt(rx * rx + ry * ry)  # (a low-pass of unit vectors: no overflow)
    c = np.divide(rx, norm, out=np.ones(rx.shape[0]), where=norm > 0)  # (no direction yet: x)
    s = np.divide(ry, norm, out=np.zeros(rx.shape[0]), where=norm > 0)
    lvl = out["acc_level"]
    lvl[b0:b1, 0] = c * acc_wx + s * acc_wy
    lvl[b0:b1, 1] = -s * acc_wx + c * acc_wy
    lvl[b0:b1, 2] = acc_wz
    np.degrees(tilt, out=out["tilt"][b0:b1])
    np.degrees(obl, out=out["obl"][b0:b1])
    rot = np.degrees(rel, out=out["rot"][b0:b1])
    rot[np.abs(rot) > turn_deg] = np.nan


def _track_heading(lowpass: Lowpass, zi: np.ndarray | None, head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running direction tracked from the pelvis heading unit vectors ``head`` (2, B) by the zero-DC-lag
    low-pass ``2B - B·B``: a vector (2, B) pointing along it (not of unit length) and the filter state;
    ``zi`` carries the state (``None``: start at ``head[:, 0]``)."""
    if zi is None:
        zi0 = lowpass.rest_state(head[:, 0])
        zi = np.stack([zi0, zi0])
    lp1, zi1 = lowpass(head, zi[0])
    lp2, zi2 = lowpass(lp1, zi[1])
    return 2.0 * lp1 - lp2, np.stack([zi1, zi2])


_TurnState = tuple[int, int, np.ndarray]
"""What :func:`_track_turns` carries from one call to the next: the samples in a row whose heading is away
from the running direction, the samples left until the settling restart (0: none due), and the last
headings (2, up to the settling window)."""


_TURNING_RAD = math.radians(15.0)
"""The settling restart waits while the mean headings of the two halves of its window differ by more than
this: the pelvis' rotation in the stride moves them apart by at most about 8° (a 1 s stride, ±6°)."""


_JUMP_RAD = math.radians(0.5)
"""A restart of the running-direction tracker that moves it by more than this leaves out the rotation of
the step it falls in (its range would hold the jump)."""


def _angle_2d(u: np.ndarray, v: np.ndarray) -> float:
    """The angle between two plane vectors (of any non-zero length), rad, in [0, pi]."""
    return abs(math.atan2(u[0] * v[1] - u[1] * v[0], u[0] * v[0] + u[1] * v[1]))


def _new_turn_state() -> _TurnState:
    return 0, 0, np.zeros((2, 0))


def _track_turns(
    lowpass: Lowpass, zi: np.ndarray | None, head: np.ndarray, turn: tuple[float, int, int], st: _TurnState
) -> tuple[np.ndarray, np.ndarray, _TurnState, list[int]]:
    """:func:`_track_heading`, restarted where the pelvis has faced away from the running direction for too
    long to be its rotation in the stride: a turn.

    ``turn`` is ``(cos_max, n_off, n_settle)``. The restart comes at the ``n_off``-th sample in a row whose
    heading is more than ``arccos(cos_max)`` from the tracked direction (``n_off`` 0: never), at rest on that
    sample's heading. That heading holds the pelvis' rotation in the stride at that moment, so once the turn
    is over (the mean heading of the two halves of the ``n_settle`` samples since agree within
    ``_TURNING_RAD``; looked at every ``n_settle`` samples) the tracker restarts again, on the mean heading of
    those samples: the rotation in the stride averages out over them. (The low-pass alone needs seconds to
    follow a U-turn.) ``st`` is the state (:data:`_TurnState`) before ``head[:, 0]``. Returns the direction,
    the filter state, the turn state after the last sample and the samples where a restart moved the
    direction by more than ``_JUMP_RAD``."""
    run, zi1 = _track_heading(lowpass, zi, head)
    cos_max, n_off, n_settle = turn
    off_n, settle_n, hist = st
    n = head.shape[1]
    jumps: list[int] = []
    if n_off <= 0 or n == 0:
        return run, zi1, st, jumps
    b0 = 0
    while b0 < n:
        rx, ry = run[0, b0:], run[1, b0:]
        hx, hy = head[0, b0:], head[1, b0:]
        # away: the angle between heading and direction exceeds the limit (an undefined heading, 0, is not away)
        away = (rx * hx + ry * hy) < cos_max * np.sqrt(rx * rx + ry * ry)
        in_row = None
        hit = -1
        if away.any():
            away &= (hx != 0.0) | (hy != 0.0)
            idx = np.arange(n - b0)
            last_ok = np.maximum.accumulate(np.where(away, -1 - off_n, idx))
            in_row = idx - last_ok  # samples away in a row, up to and including each one
            hits = np.flatnonzero(in_row >= n_off)
            hit = b0 + int(hits[0]) if hits.size else -1
        due = b0 + settle_n - 1 if 0 < settle_n <= n - b0 else -1
        if hit < 0 and due < 0:
            off_n = 0 if in_row is None else int(in_row[-1])
            settle_n = max(settle_n - (n - b0), 0)
            break
        if due >= 0 and (hit < 0 or due < hit):
            k = due
            # the n_settle samples up to k (whatever the chunking: the same array, summed the same way)
            window = np.ascontiguousarray(np.concatenate([hist, head[:, : k + 1]], axis=1)[:, -n_settle:])
            half = window.shape[1] // 2
            a, b = window[:, :half].sum(axis=1), window[:, half:].sum(axis=1)
            if _angle_2d(a, b) > _TURNING_RAD:
                # still turning: no restart; look again n_settle samples on
                off_n = 0 if in_row is None else int(in_row[k - b0])
                b0, settle_n = k + 1, n_settle
                continue
            target = a + b
            norm = float(np.hypot(target[0], target[1]))
            target = target / norm if norm > 0 else head[:, k]
            settle_n = 0
        else:
            k, target, settle_n = hit, head[:, hit], n_settle
        if _angle_2d(run[:, k], target) > _JUMP_RAD:
            jumps.append(k)
        zk = lowpass.rest_state(target)
        run[:, k:], zi1 = _track_heading(lowpass, np.stack([zk, zk]), head[:, k:])
        b0, off_n = k + 1, 0
    if n_settle > 0:
        hist = np.concatenate([hist, head[:, -n_settle:]], axis=1)[:, -n_settle:]
    return run, zi1, (off_n, settle_n, hist), jumps


def heading_state(q_world_sensor_wxyz: np.ndarray, mount_quat_wxyz: Any, rate_hz: float) -> dict[str, Any]:
    """State of the running-direction tracker of :class:`PelvisOrientation` (default parameters) after
    the sensor orientations ``q_world_sensor_wxyz`` (VQF ``quat6D``, (N, 4), in sample order) with the
    mount ``mount_quat_wxyz``, started at the first of them: the ``heading_zi`` (``None`` if N is 0) and
    ``heading_turn`` of a state handed over to :meth:`PelvisOrientation.restore_state`.

    Computed block by block exactly as the estimator does, so the state is the one a
    :class:`PelvisOrientation` fed the same samples from the first one would hold, bit for bit."""
    q_all = np.asarray(q_world_sensor_wxyz, dtype=np.float64).reshape(-1, 4)
    q_inv = check_unit_quat("mount_quat_wxyz", mount_quat_wxyz) * np.array([1.0, -1.0, -1.0, -1.0])
    p = OrientationParams()
    lowpass = Lowpass(_heading_sos(p, float(rate_hz)))
    turn = _turn_rule(p, float(rate_hz))
    zi: np.ndarray | None = None
    st = _new_turn_state()
    for b0 in range(0, q_all.shape[0], _BLOCK_N):
        q = quat_multiply(np.ascontiguousarray(q_all[b0 : b0 + _BLOCK_N]), q_inv)
        r = matrix_entries(q[:, 0], q[:, 1], q[:, 2], q[:, 3])
        # (_world_block's heading: the same bits)
        _, zi, st, _ = _track_turns(lowpass, zi, _heading_unit(r[1], r[4]), turn, st)
    return {"heading_zi": None if zi is None else zi.tolist(), "heading_turn": _turn_state_data(st)}


def _turn_state_data(st: _TurnState) -> list[Any]:
    return [st[0], st[1], st[2].tolist()]


def _turn_state_of(data: Any) -> _TurnState:
    """:data:`_TurnState` from :func:`_turn_state_data` output (``None``: a state saved before turns were
    tracked, none under way)."""
    if data is None:
        return _new_turn_state()
    off_n, settle_n, hist = data
    return int(off_n), int(settle_n), np.asarray(hist, dtype=np.float64).reshape(2, -1)


def _new_out(n: int) -> dict[str, np.ndarray]:
    return {"tilt": np.empty(n), "obl": np.empty(n), "rot": np.empty(n), "acc_level": np.empty((n, 3))}


def _motion(t: np.ndarray, out: dict[str, np.ndarray], acc_p: np.ndarray, gyr_p: np.ndarray, valid: np.ndarray) -> PelvisMotion:
    return PelvisMotion(
        quat_world_sensor_wxyz=out.get("q6"),
        t_s=t,
        tilt_deg=out["tilt"],
        obliquity_deg=out["obl"],
        rotation_deg=out["rot"],
        acc_pelvis_mps2=acc_p,
        acc_level_mps2=out["acc_level"],
        gyr_pelvis_rads=gyr_p,
        valid=valid,
    )


def _assemble(
    t: np.ndarray,
    q: np.ndarray,
    run: np.ndarray,
    acc_p: np.ndarray,
    gyr_p: np.ndarray,
    valid: np.ndarray,
) -> PelvisMotion:
    """Angles and level-frame specific force from world quaternions and the tracked running direction
    ``run`` (2, N)."""
    out = _new_out(t.shape[0])
    _level_block(_world_block(q, acc_p), run, out, 0, t.shape[0])
    return _motion(t, out, acc_p, gyr_p, valid)


def _acc_only(t: np.ndarray, acc_p: np.ndarray) -> PelvisMotion:
    nan = np.full(t.shape[0], np.nan)
    return PelvisMotion(
        t_s=t,
        tilt_deg=nan,
        obliquity_deg=nan.copy(),
        rotation_deg=nan.copy(),
        acc_pelvis_mps2=acc_p,
        acc_level_mps2=acc_p.copy(),
        gyr_pelvis_rads=None,
        valid=np.zeros(t.shape[0], dtype=bool),
    )


def _vqf_kwargs(params: OrientationParams) -> dict[str, Any]:
    return {
        "tauAcc": float(params.tau_acc_s),
        "motionBiasEstEnabled": bool(params.motion_bias_estimation),
        "restBiasEstEnabled": bool(params.rest_bias_estimation),
    }


class PelvisOrientation:
    """Streaming pelvis orientation (causal), one chunk at a time.

    Parameters
    ----------
    rate_hz : float
        Sample rate of the stream, Hz (the filter's time step is ``1 / rate_hz``).
    mount_quat_wxyz : array_like, shape (4,)
        Sensor -> pelvis rotation from the calibration, scalar first.
    params : OrientationParams, optional
        Filter parameters; defaults if ``None``.

    Notes
    -----
    Feeding the same samples whole, in notification-sized chunks or in random chunks gives bit-identical
    results: VQF (``updateBatch``) and the heading low-pass (:class:`._lowpass.Lowpass`) run sample by
    sample and carry their state across calls. Call :meth:`reset` after a gap or a reconnect.
    """

    def __init__(self, rate_hz: float, mount_quat_wxyz: Any, params: OrientationParams | None = None) -> None:
        self.rate_hz = rate_hz
        self.mount_quat_wxyz = mount_quat_wxyz
        self.params = params
        p = params if params is not None else OrientationParams()
        p.validate(float(rate_hz))
        self._p = p
        self._q_mount = check_unit_quat("mount_quat_wxyz", mount_quat_wxyz)
        self._r_mount = quat_to_matrix(self._q_mount)
        self._q_mount_inv = self._q_mount * np.array([1.0, -1.0, -1.0, -1.0])
        self._lp = Lowpass(_heading_sos(p, float(rate_hz)))
        self._turn = _turn_rule(p, float(rate_hz))
        self._warmup_n = int(round(p.warmup_s * float(rate_hz)))
        self._settle_n = int(round(p.settle_s * float(rate_hz)))
        self.reset(keep_bias=False)

    def reset(self, keep_bias: bool = True) -> None:
        """Restart the filter (after a gap or a reconnect); the next chunk starts afresh.

        Parameters
        ----------
        keep_bias : bool
            Carry the gyroscope bias estimate (and its uncertainty) into the new filter: the sensor is the
            same, and a bias learnt at rest keeps the restarted inclination accurate even if the stream
            resumes in motion.
        """
        old = getattr(self, "_vqf", None)
        self._vqf = vqf.VQF(1.0 / float(self.rate_hz), **_vqf_kwargs(self._p))
        if keep_bias and old is not None:
            bias, sigma = old.getBiasEstimate()
            self._vqf.setBiasEstimate(np.asarray(bias, dtype=np.float64), float(sigma))
        self._zi: np.ndarray | None = None
        self._turn_st = _new_turn_state()  # the tracker's turns (_track_turns)
        self._n = 0
        self._n_settled: int | None = None  # sample index at which VQF first detected rest
        self.n_samples_ = 0

    def update(self, t_s: Any, acc_mps2: Any, gyr_rads: Any) -> PelvisMotion:
        """Process one chunk of samples.

        Parameters
        ----------
        t_s : array_like, shape (N,)
            Sample times, s.
        acc_mps2 : array_like, shape (N, 3)
            Specific force, sensor frame, m/s².
        gyr_rads : array_like, shape (N, 3), or None
            Angular rate, sensor frame, rad/s; ``None`` for accelerometer-only streams (angles are then
            NaN and invalid, ``acc_level_mps2`` is the calibrated pelvis frame).

        Returns
        -------
        PelvisMotion
            Per-sample results of this chunk.
        """
        t, acc, gyr = check_chunk(t_s, acc_mps2, gyr_rads)
        acc_p = _rotate(self._r_mount, acc)
        if gyr is None:
            return _acc_only(t, acc_p)
        gyr_p = _rotate(self._r_mount, gyr)
        n = t.shape[0]
        if n == 0:
            return _assemble(t, np.zeros((0, 4)), np.zeros((2, 0)), acc_p, gyr_p, np.zeros(0, dtype=bool))
        out = _new_out(n)
        out["q6"] = np.empty((n, 4))
        rest_at = -1
        for b0 in range(0, n, _BLOCK_N):
            b1 = min(n, b0 + _BLOCK_N)
            r = self._block(acc[b0:b1], gyr[b0:b1], acc_p[b0:b1], out, b0, b1)
            if rest_at < 0 and r >= 0:
                rest_at = b0 + r
        idx = self._n + np.arange(n)
        if self._n_settled is None and rest_at >= 0:
            self._n_settled = self._n + rest_at
        settled_at = self._settle_n if self._n_settled is None else min(self._n_settled, self._settle_n)
        valid = (idx >= self._warmup_n) & (idx >= settled_at)
        self._n += n
        self.n_samples_ = self._n
        return _motion(t, out, acc_p, gyr_p, valid)

    def _block(
        self, acc: np.ndarray, gyr: np.ndarray, acc_p: np.ndarray, out: dict[str, np.ndarray], b0: int, b1: int
    ) -> int:
        """VQF, angles and heading tracker over one block; returns the block's first rest sample or -1."""
        # VQF runs on the sensor-frame samples (so that its state can be handed over from the calibration,
        # which ran it from the start of the stream); q_world_pelvis = q_world_sensor ⊗ q_mount⁻¹.
        res = self._vqf.updateBatch(gyr, acc)  # C-contiguous rows (checked by check_chunk)
        out["q6"][b0:b1] = res["quat6D"]
        q = quat_multiply(res["quat6D"], self._q_mount_inv)
        angles = _world_block(q, acc_p)
        run, self._zi, self._turn_st, jumps = _track_turns(self._lp, self._zi, angles[2], self._turn, self._turn_st)
        _level_block(angles, run, out, b0, b1, self._p.turn_deg)
        # the rotation jumps where a restart moved the running direction: no step's range is taken across it
        if jumps:
            out["rot"][[b0 + k for k in jumps]] = np.nan
        if self._n_settled is not None:
            return -1
        rest = np.flatnonzero(res["restDetected"])
        return int(rest[0]) if rest.size else -1

    def save_state(self) -> dict[str, Any]:
        """Filter state as plain data (floats, bools, lists) for a session file."""
        return {
            "version": _STATE_VERSION,
            "n": int(self._n),
            "n_settled": self._n_settled,
            "vqf": self._vqf.state,
            "heading_zi": None if self._zi is None else self._zi.tolist(),
            "heading_turn": _turn_state_data(self._turn_st),
        }

    def restore_state(self, d: dict[str, Any]) -> PelvisOrientation:
        """Continue from a state returned by :meth:`save_state` of an estimator with the same parameters,
        or from ``MountCalibration.orientation_seed_`` (the calibration's VQF, handed over right after the
        calibration sample: feed this estimator from the next sample on)."""
        if not isinstance(d, dict) or d.get("version") != _STATE_VERSION:
            raise ValueError("not a PelvisOrientation state (missing or unknown 'version')")
        self.reset(keep_bias=False)
        self._vqf.state = d["vqf"]
        self._zi = None if d["heading_zi"] is None else np.asarray(d["heading_zi"], dtype=np.float64)
        self._turn_st = _turn_state_of(d.get("heading_turn"))
        self._n = int(d["n"])
        self._n_settled = None if d["n_settled"] is None else int(d["n_settled"])
        self.n_samples_ = self._n
        return self


def offline_pelvis_orientation(
    t_s: Any, acc: Any, gyr: Any, mount_quat_wxyz: Any, rate_hz: float, params: OrientationParams | None = None
) -> PelvisMotion:
    """Pelvis orientation of a whole recording with the acausal offline VQF and a zero-phase heading filter.

    Parameters
    ----------
    t_s : array_like, shape (N,)
        Sample times, s.
    acc : array_like, shape (N, 3)
        Specific force, sensor frame, m/s².
    gyr : array_like, shape (N, 3), or None
        Angular rate, sensor frame, rad/s (``None``: accelerometer only, angles invalid).
    mount_quat_wxyz : array_like, shape (4,)
        Sensor -> pelvis rotation, scalar first.
    rate_hz : float
        Sample rate, Hz.
    params : OrientationParams, optional
        As for :class:`PelvisOrientation` (``warmup_s`` is not used: offline has no start-up transient).

    Returns
    -------
    PelvisMotion
    """
    p = params if params is not None else OrientationParams()
    p.validate(float(rate_hz))
    r_mount = quat_to_matrix(check_unit_quat("mount_quat_wxyz", mount_quat_wxyz))
    t, a, g = check_chunk(t_s, acc, gyr)
    acc_p = _rotate(r_mount, a)
    if g is None:
        return _acc_only(t, acc_p)
    gyr_p = _rotate(r_mount, g)
    n = t.shape[0]
    if n == 0:
        return _assemble(t, np.zeros((0, 4)), np.zeros((2, 0)), acc_p, gyr_p, np.zeros(0, dtype=bool))
    q_mount = check_unit_quat("mount_quat_wxyz", mount_quat_wxyz)
    out = vqf.offlineVQF(g, a, None, 1.0 / float(rate_hz), _vqf_kwargs(p))
    q = quat_multiply(out["quat6D"], q_mount * np.array([1.0, -1.0, -1.0, -1.0]))
    angles = _world_block(q, acc_p)
    head = angles[2]
    sos = _heading_sos(p, float(rate_hz))
    if n > 3 * (2 * sos.shape[0] + 1):
        # (imported here: the streaming path does without scipy.signal's import time, see ._lowpass)
        from scipy import signal

        run = signal.sosfiltfilt(sos, head, axis=1)
    else:
        run = np.repeat(head.mean(axis=1, keepdims=True), n, axis=1)
    res = _new_out(n)
    _level_block(angles, run, res, 0, n, p.turn_deg)
    return _motion(t, res, acc_p, gyr_p, np.ones(n, dtype=bool))
