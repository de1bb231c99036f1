"""A physically faithful simulator of one IMU worn at the sacrum of a runner (or walker) on a treadmill.

The model, its knobs and the truth it carries are described in ``docs/simulator.md``. In short:

* World frame: x running direction, y left, z up. The runner is on a treadmill: the sacrum oscillates about a
  fixed mean position and never drifts.
* Pelvis orientation ``R_world_pelvis = Rz(rotation) · Rx(obliquity) · Ry(tilt)`` (design.md). Each angle is
  a C2 curve through per-step knots (quintic "smootherstep" segments, so every extremum sits exactly on a
  knot): obliquity rises by the left-stance CPD during left stance and falls by the right-stance CPD during
  right stance; tilt oscillates once per step about a static anterior offset; rotation once per stride.
* Sacrum acceleration from a ground-reaction model: a vertical force pulse per foot contact (running: an
  impact transient plus an active half-sine, free fall in flight; walking: a double-humped pulse per foot
  with double support), braking-then-propulsion along x and a medial push along y. Per step window, two
  small smooth correction pulses inside the contact make the impulse and the displacement over the step
  exactly what a periodic, drift-free treadmill gait needs (zero for steady identical steps, so that the
  vertical impulse over each step equals body weight x step time exactly).
* The IMU reads specific force ``f = R_sensor_world · (a - g_vec)`` with ``g_vec = (0, 0, -9.80665)`` and the
  body angular rate in its own frame, computed analytically from the angle curves. The sensor sits at the
  simulated sacrum point (no lever arm) at any mounting rotation ``R_mount`` (sensor -> pelvis,
  ``v_pelvis = R_mount · v_sensor``).
* Sensor errors (white noise, constant and random-walk gyro bias, accelerometer bias, scale errors,
  saturation, sample-time jitter) and step-to-step variability, all seeded.

Quaternions are scalar first, ``[w, x, y, z]``.
"""

from __future__ import annotations

import asyncio
import math
import numbers
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
from scipy.integrate import cumulative_simpson
from scipy.spatial.transform import Rotation

from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch

from .source import Source, SourceEvent, SourceInfo, SourceStatus

Gait = Literal["run", "walk"]
Side = Literal["L", "R"]

MAX_SAMPLES = 20_000_000
"""Largest simulation accepted (about 28 h at 200 Hz); memory grows by about 100 bytes per sample."""

# Gait defaults: cadence (steps/min) and contact time as a fraction of the step time.
_DEFAULT_CADENCE = {"run": 170.0, "walk": 110.0}
_DEFAULT_DUTY = {"run": 0.70, "walk": 1.20}
# Peak horizontal accelerations of the sacrum driven by the ground reaction (m/s²).
_AP_ACC = {"run": 4.0, "walk": 1.5}
_ML_ACC = {"run": 1.5, "walk": 0.8}
# Running impact transient: a half-sine of this fraction of the contact, with this weight against the active
# half-sine (whose peak is 1).
_IMPACT_FRAC = 0.18
_IMPACT_WEIGHT = 0.8
# Walking: per-foot vertical force shape sin(pi u) + w3 sin(3 pi u) (the double-humped "M"), plus the
# heel-strike transient the sacrum feels: a half-sine over this fraction of the contact with this weight (the
# real L5 data of Voisard et al. show a transient 0.4-0.7 g above the pre-contact level, peaking 20-60 ms
# after heel strike).
_WALK_W3 = 0.35
_WALK_IMPACT_FRAC = 0.12
_WALK_IMPACT_WEIGHT = 0.35
# Obliquity peak (the CPD knot) as a fraction of the contact; obliquity at IC as a fraction of the drop.
_OBL_PEAK_FRAC = 0.4
_OBL_IC_FRAC = 0.25
# Tilt maximum as a fraction of the step time (minimum at initial contact).
_TILT_PEAK_FRAC = 0.5


class SimParamsError(ValueError):
    """A simulator parameter is out of range; the message names it and the accepted range."""


@dataclass(frozen=True)
class SimParams:
    """Everything that defines a simulated session (angles in deg, times in s).

    Parameters
    ----------
    seconds : float
        Length of the recording, s (standing part included).
    rate_hz : float
        Nominal sample rate, Hz.
    gait : {"run", "walk"}
        Running (flight phase) or walking (double support).
    cadence_spm : float or None
        Steps per minute; None = gait default (run 170, walk 110). Accepted range 60..240.
    cpd_left_deg, cpd_right_deg : float
        Contralateral pelvic drop during LEFT / RIGHT stance, deg (>= 0).
    tilt_range_deg : float
        Peak-to-peak of the pelvic tilt oscillation (once per step), deg.
    rotation_range_deg : float
        Peak-to-peak of the pelvic rotation (once per stride), deg.
    contact_time_s : float or None
        Ground contact time of one foot, s; None = gait default (run 0.70, walk 1.20 x the step time).
        Walking with a step-time asymmetry: the mean of the two feet's (each foot's is its own step time
        plus the same double support).
    step_time_asymmetry_pct : float
        ``100 (T_L - T_R) / (0.5 (T_L + T_R))`` of the step times (a step is named by its stance side).
    mount_euler_deg : (float, float, float)
        Mounting rotation sensor -> pelvis as ``scipy Rotation.from_euler("xyz", ..., degrees=True)``
        (extrinsic x, then y, then z): ``v_pelvis = R_mount · v_sensor``.
    stand_s : float
        Standing still at the start, s (for calibration); gait starts after it with a smooth ramp.
    end_stand_s : float
        Standing still at the end, s: the gait ramps down over ``ramp_steps`` steps and has died away when
        it starts (0: the gait goes on to the end of the recording).
    first_side : {"L", "R"}
        Stance side of the first step.
    tilt_offset_deg : float
        Static anterior pelvic tilt, deg, present throughout (standing included).
    ramp_steps : int
        Steps over which the gait amplitudes ramp up from standing to full.
    errors : bool
        Master switch of the sensor errors below (noise, biases, scale, saturation, jitter).
    acc_noise_mps2, gyr_noise_rads : float
        White noise standard deviation per axis and sample.
    acc_bias_mps2 : float
        Standard deviation of the constant accelerometer bias drawn per axis, m/s².
    gyr_bias_dps : float
        Standard deviation of the constant gyro bias drawn per axis, deg/s.
    gyr_bias_walk_dps : float
        Gyro bias random walk, deg/s per sqrt(s).
    acc_scale_error, gyr_scale_error : float
        Standard deviation of the per-axis scale error (0.005 = 0.5 %).
    acc_range_g, gyr_range_dps : float
        Full-scale ranges; readings are clipped there.
    jitter_s : float
        Standard deviation of the true sample times around the nominal grid, s (clipped to 0.3 periods).
    variability : bool
        Master switch of the step-to-step variability below.
    step_time_cv, contact_time_cv : float
        Coefficient of variation of step and contact times.
    cpd_sd_deg : float
        Standard deviation of the per-step CPD, deg.
    range_cv : float
        Coefficient of variation of the per-step tilt and rotation ranges.
    seed : int
        Seed of the numpy Generator behind every random draw.
    """

    seconds: float = 60.0
    rate_hz: float = 200.0
    gait: Gait = "run"
    cadence_spm: float | None = None
    cpd_left_deg: float = 6.0
    cpd_right_deg: float = 6.0
    tilt_range_deg: float = 6.0
    rotation_range_deg: float = 12.0
    contact_time_s: float | None = None
    step_time_asymmetry_pct: float = 0.0
    mount_euler_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    stand_s: float = 5.0
    end_stand_s: float = 0.0
    first_side: Side = "L"
    tilt_offset_deg: float = 10.0
    ramp_steps: int = 6
    # sensor errors
    errors: bool = True
    acc_noise_mps2: float = 0.03
    gyr_noise_rads: float = 0.005
    acc_bias_mps2: float = 0.05
    gyr_bias_dps: float = 0.5
    gyr_bias_walk_dps: float = 0.005
    acc_scale_error: float = 0.005
    gyr_scale_error: float = 0.005
    acc_range_g: float = 16.0
    gyr_range_dps: float = 2000.0
    jitter_s: float = 1e-4
    # step-to-step variability
    variability: bool = True
    step_time_cv: float = 0.015
    contact_time_cv: float = 0.02
    cpd_sd_deg: float = 0.5
    range_cv: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mount_euler_deg", tuple(float(v) for v in self.mount_euler_deg))
        _validate(self)

    @classmethod
    def ideal(cls, **kwargs: Any) -> SimParams:
        """Parameters with every sensor error and all step-to-step variability switched off."""
        kwargs.setdefault("errors", False)
        kwargs.setdefault("variability", False)
        return cls(**kwargs)

    @property
    def cadence(self) -> float:
        """The cadence in effect, steps/min."""
        return _DEFAULT_CADENCE[self.gait] if self.cadence_spm is None else float(self.cadence_spm)

    @property
    def step_times_s(self) -> tuple[float, float]:
        """Nominal (left, right) step times, s."""
        t = 60.0 / self.cadence
        a = self.step_time_asymmetry_pct / 200.0
        return t * (1.0 + a), t * (1.0 - a)

    @property
    def contact(self) -> float:
        """The contact time in effect, s."""
        if self.contact_time_s is not None:
            return float(self.contact_time_s)
        return _DEFAULT_DUTY[self.gait] * 60.0 / self.cadence

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mount_euler_deg"] = list(self.mount_euler_deg)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimParams:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "mount_euler_deg" in kw:
            kw["mount_euler_deg"] = tuple(kw["mount_euler_deg"])
        return cls(**kw)


def _check(name: str, value: float, lo: float, hi: float, unit: str = "") -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and lo <= value <= hi):
        raise SimParamsError(f"{name} must be between {lo:g} and {hi:g}{unit}, got {value!r}")


def _validate(p: SimParams) -> None:
    if p.gait not in ("run", "walk"):
        raise SimParamsError(f"gait must be 'run' or 'walk', got {p.gait!r}")
    if p.first_side not in ("L", "R"):
        raise SimParamsError(f"first_side must be 'L' or 'R', got {p.first_side!r}")
    _check("seconds", p.seconds, 1e-3, 86_400.0, " s")
    _check("rate_hz", p.rate_hz, 10.0, 2000.0, " Hz")
    if p.seconds * p.rate_hz > MAX_SAMPLES:
        raise SimParamsError(
            f"seconds x rate_hz = {p.seconds * p.rate_hz:.0f} samples is more than {MAX_SAMPLES}; "
            "simulate a shorter session"
        )
    if p.cadence_spm is not None:
        _check("cadence_spm", p.cadence_spm, 60.0, 240.0, " steps/min")
    _check("cpd_left_deg", p.cpd_left_deg, 0.0, 25.0, " deg")
    _check("cpd_right_deg", p.cpd_right_deg, 0.0, 25.0, " deg")
    _check("tilt_range_deg", p.tilt_range_deg, 0.0, 30.0, " deg")
    _check("rotation_range_deg", p.rotation_range_deg, 0.0, 40.0, " deg")
    _check("step_time_asymmetry_pct", p.step_time_asymmetry_pct, -30.0, 30.0, " %")
    _check("stand_s", p.stand_s, 0.0, 3600.0, " s")
    _check("end_stand_s", p.end_stand_s, 0.0, 3600.0, " s")
    _check("tilt_offset_deg", p.tilt_offset_deg, -30.0, 40.0, " deg")
    if not isinstance(p.ramp_steps, numbers.Integral) or not 1 <= p.ramp_steps <= 100:
        raise SimParamsError(f"ramp_steps must be an integer between 1 and 100, got {p.ramp_steps!r}")
    if len(p.mount_euler_deg) != 3:
        raise SimParamsError("mount_euler_deg needs three angles (x, y, z), deg")
    for v in p.mount_euler_deg:
        _check("mount_euler_deg", v, -360.0, 360.0, " deg")
    t_l, t_r = p.step_times_s
    t_min, t_max = min(t_l, t_r), max(t_l, t_r)
    if p.contact_time_s is not None:
        _check("contact_time_s", p.contact_time_s, 0.05, 2.0, " s")
    c = p.contact
    if p.gait == "run" and not c <= 0.9 * t_min:
        raise SimParamsError(
            f"contact_time_s {c:.3f} s leaves no flight phase at this cadence (step time {t_min:.3f} s): "
            "running needs contact <= 0.9 x step time; lower it or use --gait walk"
        )
    # walking: each foot's contact is its step time plus the same double support, c - mean step time
    # (_contact_half); it must be 0.05-0.6 x each step time (1.05-1.6 x the step time without a limp)
    lo, hi = 0.5 * (t_l + t_r) + 0.05 * t_max, 0.5 * (t_l + t_r) + 0.6 * t_min
    if p.gait == "walk" and not (lo <= c <= hi):
        steps = f"{t_min:.3f} s" if t_max == t_min else f"{t_min:.3f}-{t_max:.3f} s"
        why = ("gives too little double support (a foot would leave before the other lands)" if c < lo
               else "leaves too little single support (both feet on the ground most of the step)")
        raise SimParamsError(
            f"contact_time_s {c:.3f} s {why} at this cadence (step time {steps}): walking needs {lo:.3f}-{hi:.3f} s "
            "(1.05-1.6 x the step time; with a limp the mean step time plus 0.05 x the longer to 0.6 x the shorter "
            "step)"
        )
    if p.end_stand_s > 0:
        room = p.seconds - p.stand_s - p.end_stand_s - 0.5 * (t_l + t_r)
        need = (2 * p.ramp_steps + 2) * t_max
        if room < need:
            raise SimParamsError(
                f"seconds {p.seconds:g} leaves {max(room, 0.0):.1f} s for the steps between stand_s and "
                f"end_stand_s; ramping up and down needs {need:.1f} s: lengthen seconds or shorten the standing"
            )
    for name in ("acc_noise_mps2", "gyr_noise_rads", "acc_bias_mps2", "gyr_bias_dps", "gyr_bias_walk_dps"):
        _check(name, getattr(p, name), 0.0, 100.0)
    for name in ("acc_scale_error", "gyr_scale_error"):
        _check(name, getattr(p, name), 0.0, 0.2)
    _check("acc_range_g", p.acc_range_g, 1.0, 1000.0, " g")
    _check("gyr_range_dps", p.gyr_range_dps, 10.0, 100_000.0, " deg/s")
    _check("jitter_s", p.jitter_s, 0.0, 1.0, " s")
    _check("step_time_cv", p.step_time_cv, 0.0, 0.1)
    _check("contact_time_cv", p.contact_time_cv, 0.0, 0.1)
    _check("cpd_sd_deg", p.cpd_sd_deg, 0.0, 5.0, " deg")
    _check("range_cv", p.range_cv, 0.0, 0.5)
    if not isinstance(p.seed, numbers.Integral) or isinstance(p.seed, bool) or p.seed < 0:
        raise SimParamsError(f"seed must be a non-negative integer, got {p.seed!r}")


@dataclass(frozen=True)
class TruthStep:
    """The truth of one simulated step (from this initial contact to the other foot's next one).

    Attributes
    ----------
    side : {"L", "R"}
        Stance side.
    t_ic_s, t_fc_s : float
        Initial contact and final contact (toe-off) of the stance foot, session time, s.
    step_time_s, contact_time_s, flight_time_s : float
        s; ``flight_time_s`` is 0 for walking.
    double_support_s : float
        Both feet on the ground within the step, s (0 for running).
    cpd_deg : float
        Largest drop of the swing side between IC and FC relative to the obliquity at IC, deg.
    obliquity_range_deg, tilt_range_deg, rotation_range_deg : float
        Peak-to-peak of the pelvis angles over the step, deg.
    vertical_oscillation_cm : float
        Peak-to-peak vertical displacement of the sacrum over the step, cm.
    impact_g : float
        Peak vertical specific force in the first 20 % of the contact, g.
    peak_g : float
        Peak vertical specific force over the step, g.
    ramp : float
        Amplitude factor of the start-up ramp (1 = full gait); steps with ``ramp < 1`` are the transition
        from standing.
    """

    side: Side
    t_ic_s: float
    t_fc_s: float
    step_time_s: float
    contact_time_s: float
    flight_time_s: float
    double_support_s: float
    cpd_deg: float
    obliquity_range_deg: float
    tilt_range_deg: float
    rotation_range_deg: float
    vertical_oscillation_cm: float
    impact_g: float
    peak_g: float
    ramp: float

    @property
    def cadence_spm(self) -> float:
        return 60.0 / self.step_time_s


@dataclass(frozen=True, eq=False)
class SimTruth:
    """What the simulated sensor should let one measure.

    Attributes
    ----------
    steps : list of TruthStep
        Every complete step inside the recording, in time order.
    t_s : ndarray, shape (N,)
        True sample times, s (the same as the batch's ``t_s``).
    tilt_deg, obliquity_deg, rotation_deg : ndarray, shape (N,)
        Pelvis angles at the samples, deg (design.md definitions).
    vertical_m : ndarray, shape (N,)
        Vertical displacement of the sacrum about its standing height, m.
    mount_quat_wxyz : ndarray, shape (4,)
        Rotation sensor -> pelvis, ``v_pelvis = R_mount · v_sensor``, scalar first.
    gait_start_s : float
        End of standing still; the ramp into the gait starts here.
    params : dict
        The ``SimParams`` as a dict.
    gyr_bias_rads : ndarray, shape (N, 3), or None
        The gyro bias actually added (constant plus random walk), sensor frame; None without errors.
    """

    steps: list[TruthStep]
    t_s: np.ndarray
    tilt_deg: np.ndarray
    obliquity_deg: np.ndarray
    rotation_deg: np.ndarray
    mount_quat_wxyz: np.ndarray
    gait_start_s: float
    params: dict[str, Any] = field(default_factory=dict)
    vertical_m: np.ndarray | None = None
    gyr_bias_rads: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (lists and numbers only); see docs/simulator.md for the layout."""
        samples: dict[str, Any] = {
            "t_s": self.t_s.tolist(),
            "tilt_deg": self.tilt_deg.tolist(),
            "obliquity_deg": self.obliquity_deg.tolist(),
            "rotation_deg": self.rotation_deg.tolist(),
        }
        if self.vertical_m is not None:
            samples["vertical_m"] = self.vertical_m.tolist()
        return {
            "format": "pelvimon-simulator-truth",
            "version": 1,
            "params": dict(self.params),
            "gait_start_s": float(self.gait_start_s),
            "mount_quat_wxyz": [float(v) for v in self.mount_quat_wxyz],
            "steps": [asdict(s) for s in self.steps],
            "samples": samples,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SimTruth:
        """Rebuild from ``to_json()`` output."""
        s = d["samples"]
        names = {f.name for f in fields(TruthStep)}
        return cls(
            steps=[TruthStep(**{k: v for k, v in st.items() if k in names}) for st in d["steps"]],
            t_s=np.asarray(s["t_s"], dtype=np.float64),
            tilt_deg=np.asarray(s["tilt_deg"], dtype=np.float64),
            obliquity_deg=np.asarray(s["obliquity_deg"], dtype=np.float64),
            rotation_deg=np.asarray(s["rotation_deg"], dtype=np.float64),
            mount_quat_wxyz=np.asarray(d["mount_quat_wxyz"], dtype=np.float64),
            gait_start_s=float(d.get("gait_start_s", 0.0)),
            params=dict(d.get("params", {})),
            vertical_m=None if "vertical_m" not in s else np.asarray(s["vertical_m"], dtype=np.float64),
        )

    def steps_of(self, side: Side) -> list[TruthStep]:
        return [s for s in self.steps if s.side == side]


@dataclass(frozen=True, eq=False)
class Simulation:
    """A simulated recording: the IMU samples (session time, sensor frame) and the truth behind them."""

    batch: ImuBatch
    truth: SimTruth
    params: SimParams


# ---------------------------------------------------------------------------------------------------------
# Smooth curves through knots
# ---------------------------------------------------------------------------------------------------------


def _smootherstep(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S(u) = 10u³ - 15u⁴ + 6u⁵ and S'(u): monotone 0 -> 1, with zero 1st and 2nd derivatives at the ends."""
    u2 = u * u
    s = u2 * u * (10.0 + u * (-15.0 + 6.0 * u))
    ds = 30.0 * u2 * (1.0 - u) ** 2
    return s, ds


def _knot_curve(tk: np.ndarray, yk: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and time derivative of the C2 curve through knots ``(tk, yk)`` (constant outside)."""
    j = np.clip(np.searchsorted(tk, t, side="right") - 1, 0, len(tk) - 2)
    dt = tk[j + 1] - tk[j]
    u = np.clip((t - tk[j]) / dt, 0.0, 1.0)
    s, ds = _smootherstep(u)
    dy = yk[j + 1] - yk[j]
    inside = (t >= tk[0]) & (t <= tk[-1])
    return yk[j] + dy * s, np.where(inside, dy * ds / dt, 0.0)


# ---------------------------------------------------------------------------------------------------------
# The gait schedule
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Schedule:
    """Per-step timing and amplitudes. Step k: IC at ``ic[k]``, window ``[ic[k], ic[k+1]]``."""

    gait: Gait
    ic: np.ndarray  # (K+1,)
    T: np.ndarray  # (K,)
    c: np.ndarray  # (K,)
    side: np.ndarray  # (K,) +1 left stance, -1 right stance
    s: np.ndarray  # (K,) ramp factor
    cpd: np.ndarray  # (K,) deg
    tilt_r: np.ndarray  # (K,) deg
    rot_r: np.ndarray  # (K,) deg
    t0: float  # end of standing
    tilt0: float
    c_half: float = 0.0  # half the nominal left contact less the right (a limping walk; 0 otherwise)

    @property
    def K(self) -> int:
        return len(self.T)


def _contact_half(p: SimParams) -> float:
    """Half the nominal left contact time less the right, s: a foot's contact is ``contact_time_s`` plus this
    times its side (+1 left, -1 right). Running: 0 (one contact time for both feet). Walking: half the left
    step time less the right, so that each foot's contact is its own step time plus the same double support
    (``contact_time_s`` less the mean step time) and with a limp too the trailing foot unloads while the
    other foot lands: its push-off peak (the second hump) meets the other foot's heel strike (with one
    contact time for both feet the longer step's foot had unloaded before the other landed: the specific
    force fell to 0.75 g at that heel strike at 15 % asymmetry, and rose to only 1.1 g after it). Without a
    limp 0.0 exactly, so the contact keeps its own bits."""
    if p.gait == "run":
        return 0.0
    t_l, t_r = p.step_times_s
    return 0.5 * (t_l - t_r)


def _schedule(p: SimParams, rng: np.random.Generator | None, t_end: float) -> _Schedule:
    t_l, t_r = p.step_times_s
    t_nom = 0.5 * (t_l + t_r)
    lead = t_nom
    # enough steps to pass the end even if every step were as short as the variability allows (-3 SD)
    k_needed = int(math.ceil((t_end - p.stand_s - lead) / (0.65 * min(t_l, t_r)))) + 4
    k = max(k_needed, p.ramp_steps + 4)
    first = 1.0 if p.first_side == "L" else -1.0
    side = first * np.where(np.arange(k) % 2 == 0, 1.0, -1.0)
    step_t = np.where(side > 0, t_l, t_r)
    c_half = _contact_half(p)
    contact = p.contact + c_half * side
    cpd = np.where(side > 0, p.cpd_left_deg, p.cpd_right_deg).astype(np.float64)
    tilt_r = np.full(k, p.tilt_range_deg)
    rot_r = np.full(k, p.rotation_range_deg)
    if rng is not None:

        def z() -> np.ndarray:
            return np.clip(rng.standard_normal(k), -3.0, 3.0)

        step_t = step_t * (1.0 + p.step_time_cv * z())
        contact = contact * (1.0 + p.contact_time_cv * z())
        cpd = np.maximum(cpd + p.cpd_sd_deg * z(), 0.0)
        tilt_r = np.maximum(tilt_r * (1.0 + p.range_cv * z()), 0.0)
        rot_r = np.maximum(rot_r * (1.0 + p.range_cv * z()), 0.0)
        if p.gait == "run":
            contact = np.clip(contact, 0.05, 0.92 * step_t)
        else:
            contact = np.clip(contact, 1.03 * step_t, None)
            nxt = np.r_[step_t[1:], step_t[-1]]
            contact = np.minimum(contact, 0.97 * (step_t + nxt))
    ramp_u = np.clip((np.arange(k) + 1.0) / p.ramp_steps, 0.0, 1.0)
    s, _ = _smootherstep(ramp_u)
    ic = p.stand_s + lead + np.r_[0.0, np.cumsum(step_t)]
    if p.end_stand_s > 0:
        # the last steps before the final standing ramp down as the first ones ramp up, and the motion has
        # died away by its start: the last step is followed by a still one (a walking contact outlasts its
        # step, and each step's window settles the sacrum's velocity by its end) that ends before it
        k_stop = max(int(np.searchsorted(ic[1:], t_end - p.end_stand_s, side="right")) - 1, 0)
        s = s * _smootherstep(np.clip((k_stop - np.arange(k)) / p.ramp_steps, 0.0, 1.0))[0]
    return _Schedule(
        gait=p.gait,
        ic=ic,
        T=step_t,
        c=contact,
        side=side,
        s=s,
        cpd=cpd,
        tilt_r=tilt_r,
        rot_r=rot_r,
        t0=p.stand_s,
        tilt0=p.tilt_offset_deg,
        c_half=c_half,
    )


def _angle_knots(sc: _Schedule) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Knots (times, values in deg) of the three pelvis angles."""
    k = sc.K
    # obliquity: at IC the pelvis sits a little towards the coming drop's opposite side (a fraction
    # _OBL_IC_FRAC of this step's drop), then rises (left stance) or falls (right stance) by the CPD to the
    # peak knot. The IC value is clamped so that the curve never keeps moving the drop's way between the
    # peak and the next IC: the peak knot is then the largest drop between IC and toe-off, exactly.
    drop = sc.cpd * sc.s  # (K,) >= 0
    peak = np.empty(k)
    at_ic = np.empty(k)
    prev_peak_on_side = 0.0  # sigma_{k-1} * P_{k-1} (>= 0)
    for i in range(k):  # K is the number of steps (about 3 per second), not samples
        back = min(_OBL_IC_FRAC * drop[i], prev_peak_on_side)
        at_ic[i] = -sc.side[i] * back
        peak[i] = at_ic[i] + sc.side[i] * drop[i]
        prev_peak_on_side = sc.side[i] * peak[i]
    t_obl = np.empty(2 * k + 1)
    y_obl = np.empty(2 * k + 1)
    t_obl[0], y_obl[0] = sc.t0, 0.0
    t_obl[1::2], y_obl[1::2] = sc.ic[:-1], at_ic
    t_obl[2::2], y_obl[2::2] = sc.ic[:-1] + _OBL_PEAK_FRAC * sc.c, peak
    # tilt: minimum at IC, maximum at mid-step
    t_tilt = np.empty(2 * k + 1)
    y_tilt = np.empty(2 * k + 1)
    t_tilt[0], y_tilt[0] = sc.t0, sc.tilt0
    half = 0.5 * sc.tilt_r * sc.s
    t_tilt[1::2], y_tilt[1::2] = sc.ic[:-1], sc.tilt0 - half
    t_tilt[2::2], y_tilt[2::2] = sc.ic[:-1] + _TILT_PEAK_FRAC * sc.T, sc.tilt0 + half
    # rotation: at IC the stance side is forward (left IC: pelvis turned right, rotation < 0)
    t_rot = np.r_[sc.t0, sc.ic[:-1]]
    y_rot = np.r_[0.0, -sc.side * 0.5 * sc.rot_r * sc.s]
    return {"tilt": (t_tilt, y_tilt), "obliquity": (t_obl, y_obl), "rotation": (t_rot, y_rot)}


# ---------------------------------------------------------------------------------------------------------
# Translational dynamics
# ---------------------------------------------------------------------------------------------------------


def _vertical_area(gait: Gait) -> float:
    """Area of the (unnormalised) vertical force shape over u in [0, 1]."""
    if gait == "run":
        return 2.0 / math.pi + _IMPACT_WEIGHT * 2.0 * _IMPACT_FRAC / math.pi
    return 2.0 / math.pi + _WALK_W3 * 2.0 / (3.0 * math.pi) + _WALK_IMPACT_WEIGHT * 2.0 * _WALK_IMPACT_FRAC / math.pi


def _vertical_shape(gait: Gait, u: np.ndarray) -> np.ndarray:
    """Unit-area vertical force shape over one contact, u in [0, 1)."""
    area = _vertical_area(gait)
    if gait == "run":
        imp = np.where(u < _IMPACT_FRAC, np.sin(math.pi * np.minimum(u / _IMPACT_FRAC, 1.0)), 0.0)
        return (np.sin(math.pi * u) + _IMPACT_WEIGHT * imp) / area
    hs = np.where(u < _WALK_IMPACT_FRAC, np.sin(math.pi * np.minimum(u / _WALK_IMPACT_FRAC, 1.0)), 0.0)
    return (np.sin(math.pi * u) + _WALK_W3 * np.sin(3.0 * math.pi * u) + _WALK_IMPACT_WEIGHT * hs) / area


class _Dynamics:
    """World acceleration of the sacrum (m/s², world frame, gravity not included) for a schedule."""

    def __init__(self, sc: _Schedule, corrected: bool = True) -> None:
        self.sc = sc
        self.ap = _AP_ACC[sc.gait]
        self.ml = _ML_ACC[sc.gait]
        k = sc.K
        # windows: 0 = lead-in from standing to the first IC, m = k+1 = step k
        self.w_start = np.r_[sc.t0, sc.ic[:-1]]
        self.w_end = sc.ic.copy()
        self.w_len = self.w_end - self.w_start
        self.w_bump = np.r_[self.w_len[0], sc.c if sc.gait == "run" else sc.T]
        self.ramp_t = np.r_[sc.t0, sc.ic[:-1]]
        self.ramp_y = np.r_[0.0, sc.s]
        self.gamma = np.zeros((k + 1, 3))
        self.delta = np.zeros((k + 1, 3))
        if corrected:
            self._solve_corrections()

    # -- the uncorrected model --------------------------------------------------------------------------
    def uncorrected(self, t: np.ndarray) -> np.ndarray:
        sc = self.sc
        k = sc.K
        win = np.searchsorted(sc.ic, t, side="right") - 1  # step index; -1 before the first IC
        out = np.zeros((t.shape[0], 3))
        for lag in (0, 1):
            j = win - lag
            jj = np.clip(j, 0, k - 1)
            tau = t - sc.ic[jj]
            u = tau / sc.c[jj]
            on = (j >= 0) & (j < k) & (tau >= 0.0) & (u < 1.0)
            if not on.any():
                continue
            jo, uo = jj[on], u[on]
            amp = sc.s[jo]
            out[on, 2] += amp * G_MPS2 * sc.T[jo] / sc.c[jo] * _vertical_shape(sc.gait, uo)
            out[on, 0] += -amp * self.ap * np.sin(2.0 * math.pi * uo)
            out[on, 1] += -sc.side[jo] * amp * self.ml * np.sin(math.pi * uo)
        # body weight, faded in with the ramp along a C2 curve so that the acceleration stays continuous
        ramp, _ = _knot_curve(self.ramp_t, self.ramp_y, t)
        out[:, 2] -= G_MPS2 * ramp
        return out

    def correction(self, t: np.ndarray) -> np.ndarray:
        m = np.clip(np.searchsorted(self.w_start, t, side="right") - 1, 0, len(self.w_start) - 1)
        tau = t - self.w_start[m]
        u = tau / self.w_bump[m]
        on = (tau >= 0.0) & (u < 1.0) & (t < self.w_end[-1])
        b1 = np.where(on, np.sin(math.pi * u) ** 2, 0.0)
        b2 = b1 * (2.0 * u - 1.0)
        return self.gamma[m] * b1[:, None] + self.delta[m] * b2[:, None]

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return self.uncorrected(t) + self.correction(t)

    # -- exact impulse and displacement per window --------------------------------------------------------
    def _breaks(self) -> np.ndarray:
        sc = self.sc
        ic, c = sc.ic[:-1], sc.c
        prev_ic = np.r_[ic[0], ic[:-1]]
        prev_c = np.r_[0.0, c[:-1]]
        f = _IMPACT_FRAC if sc.gait == "run" else _WALK_IMPACT_FRAC
        step_breaks = np.stack([ic + f * c, ic + c, prev_ic + f * prev_c, prev_ic + prev_c], axis=1)
        lead = np.full((1, 4), self.w_start[0])
        return np.vstack([lead, step_breaks])

    def window_moments(self, fn: Any, order: int = 1) -> list[np.ndarray]:
        """Integrals over each window of ``fn(t)`` (n,3) times ``(t_end - t)**i / i!`` for i = 0..order."""
        t0, t1 = self.w_start, self.w_end
        br = np.clip(self._breaks(), t0[:, None], t1[:, None])
        pts = np.sort(np.hstack([t0[:, None], br, t1[:, None]]), axis=1)
        a, b = pts[:, :-1], pts[:, 1:]
        x, w = np.polynomial.legendre.leggauss(16)
        tt = 0.5 * (a + b)[..., None] + 0.5 * (b - a)[..., None] * x
        ww = 0.5 * (b - a)[..., None] * w
        vals = fn(tt.ravel()).reshape(*tt.shape, 3)
        out = []
        for i in range(order + 1):
            kern = ww * (t1[:, None, None] - tt) ** i / math.factorial(i)
            out.append(np.einsum("wsn,wsnc->wc", kern, vals))
        return out

    def _solve_corrections(self) -> None:
        sc = self.sc
        v_ic, p_ic = _nominal_ic_states(sc)
        # target states at every window boundary: standing (0) then each IC, scaled by that step's ramp
        side_next = np.r_[sc.side, -sc.side[-1]]
        s_next = np.r_[sc.s, sc.s[-1]]
        left = side_next > 0
        v_t = np.where(left[:, None], v_ic[0], v_ic[1]) * s_next[:, None]
        p_t = np.where(left[:, None], p_ic[0], p_ic[1]) * s_next[:, None]
        v_b = np.vstack([np.zeros((1, 3)), v_t])
        p_b = np.vstack([np.zeros((1, 3)), p_t])
        self.v_boundary, self.p_boundary = v_b, p_b
        i0, i1 = self.window_moments(self.uncorrected, order=1)
        dv = v_b[1:] - v_b[:-1] - i0
        dp = p_b[1:] - p_b[:-1] - v_b[:-1] * self.w_len[:, None] - i1
        w, big_l = self.w_bump[:, None], self.w_len[:, None]
        b1 = w / 2.0
        m1 = big_l * w / 2.0 - w * w / 4.0
        m2 = -w * w * (1.0 / 12.0 - 1.0 / (2.0 * math.pi**2))
        self.gamma = dv / b1
        self.delta = (dp - self.gamma * m1) / m2


def _nominal_ic_states(sc: _Schedule) -> tuple[np.ndarray, np.ndarray]:
    """Velocity and position (3,) at left IC and right IC of the periodic steady gait (mean position 0)."""
    t_l = float(np.median(sc.T[sc.side > 0]))
    t_r = float(np.median(sc.T[sc.side < 0]))
    c = float(np.median(sc.c))
    side = np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    T = np.where(side > 0, t_l, t_r)
    syn = _Schedule(
        gait=sc.gait,
        ic=np.r_[0.0, np.cumsum(T)],
        T=T,
        c=c + sc.c_half * side,
        side=side,
        s=np.ones(5),
        cpd=np.zeros(5),
        tilt_r=np.zeros(5),
        rot_r=np.zeros(5),
        t0=-T[0],
        tilt0=0.0,
    )
    dyn = _Dynamics(syn, corrected=False)
    i0, i1, i2 = dyn.window_moments(dyn.uncorrected, order=2)
    # windows 3 (left step) and 4 (right step) have a fully developed previous contact
    il, dl, ql = i0[3], i1[3], i2[3]
    dr, qr = i1[4], i2[4]
    ts = t_l + t_r
    v_l = -(dl + dr + il * t_r) / ts
    v_r = v_l + il
    # second moment of the stride about its end: int_0^Ts (Ts - s)^2/2 a(s) ds
    q_stride = qr + ql + dl * t_r + il * t_r**2 / 2.0
    p_l = -(v_l * ts / 2.0 + q_stride / ts)
    p_r = p_l + v_l * t_l + dl
    return np.stack([v_l, v_r]), np.stack([p_l, p_r])


# ---------------------------------------------------------------------------------------------------------
# Orientation and IMU readings
# ---------------------------------------------------------------------------------------------------------


def pelvis_matrices(tilt_deg: np.ndarray, obliquity_deg: np.ndarray, rotation_deg: np.ndarray) -> np.ndarray:
    """``R_world_pelvis = Rz(rotation) · Rx(obliquity) · Ry(tilt)`` as (N, 3, 3) matrices."""
    th, ph, ps = np.radians(tilt_deg), np.radians(obliquity_deg), np.radians(rotation_deg)
    ct, st, cf, sf, cz, sz = np.cos(th), np.sin(th), np.cos(ph), np.sin(ph), np.cos(ps), np.sin(ps)
    r = np.empty((len(th), 3, 3))
    # Rz·Rx·Ry written out
    r[:, 0, 0] = cz * ct - sz * sf * st
    r[:, 0, 1] = -sz * cf
    r[:, 0, 2] = cz * st + sz * sf * ct
    r[:, 1, 0] = sz * ct + cz * sf * st
    r[:, 1, 1] = cz * cf
    r[:, 1, 2] = sz * st - cz * sf * ct
    r[:, 2, 0] = -cf * st
    r[:, 2, 1] = sf
    r[:, 2, 2] = cf * ct
    return r


def _body_rate(
    tilt: np.ndarray, obl: np.ndarray, dtilt: np.ndarray, dobl: np.ndarray, drot: np.ndarray
) -> np.ndarray:
    """Pelvis-frame angular velocity (N,3) rad/s from the angles (rad) and their rates (rad/s)."""
    ct, st, cf, sf = np.cos(tilt), np.sin(tilt), np.cos(obl), np.sin(obl)
    w = np.empty((len(tilt), 3))
    w[:, 0] = -drot * st * cf + dobl * ct
    w[:, 1] = drot * sf + dtilt
    w[:, 2] = drot * ct * cf + dobl * st
    return w


def mount_rotation(mount_euler_deg: tuple[float, float, float]) -> Rotation:
    """The sensor -> pelvis rotation of ``--mount-euler-deg X Y Z`` (scipy extrinsic "xyz", degrees)."""
    return Rotation.from_euler("xyz", list(mount_euler_deg), degrees=True)


@dataclass(frozen=True, eq=False)
class _Bout:
    """The error-free readings of one bout and its truth (at given sample times)."""

    acc: np.ndarray
    gyr: np.ndarray
    tilt: np.ndarray
    obl: np.ndarray
    rot: np.ndarray
    vertical: np.ndarray
    steps: list[TruthStep]


def _ideal_bout(p: SimParams, rng_var: np.random.Generator | None, t: np.ndarray, t_end: float) -> _Bout:
    """Error-free sensor-frame readings of ``p`` at the times ``t`` (s, from the start of the bout)."""
    sc = _schedule(p, rng_var, t_end)
    knots = _angle_knots(sc)
    dyn = _Dynamics(sc)

    tilt, dtilt = _knot_curve(*knots["tilt"], t)
    obl, dobl = _knot_curve(*knots["obliquity"], t)
    rot, drot = _knot_curve(*knots["rotation"], t)
    r_wp = pelvis_matrices(tilt, obl, rot)
    w_p = _body_rate(np.radians(tilt), np.radians(obl), np.radians(dtilt), np.radians(dobl), np.radians(drot))
    m = mount_rotation(p.mount_euler_deg).as_matrix()
    a_world = dyn(t)
    f_world = a_world + np.array([0.0, 0.0, G_MPS2])
    f_pelvis = np.einsum("nji,nj->ni", r_wp, f_world)  # R_wp^T f
    acc = f_pelvis @ m  # R_m^T f_pelvis, row-wise
    gyr = w_p @ m
    vertical, steps = _truth_steps(sc, dyn, knots, t, t_end)
    return _Bout(acc, gyr, tilt, obl, rot, vertical, steps)


def _sensor_errors(
    p: SimParams, acc: np.ndarray, gyr: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``p``'s sensor errors added to error-free readings: ``(acc, gyr, gyro bias added)``."""
    n = acc.shape[0]
    dt = 1.0 / p.rate_hz
    acc = acc * (1.0 + p.acc_scale_error * rng.standard_normal(3))
    acc = acc + p.acc_bias_mps2 * rng.standard_normal(3) + p.acc_noise_mps2 * rng.standard_normal((n, 3))
    bias0 = np.radians(p.gyr_bias_dps) * rng.standard_normal(3)
    walk = np.radians(p.gyr_bias_walk_dps) * math.sqrt(dt) * np.cumsum(rng.standard_normal((n, 3)), axis=0)
    gyr_bias = bias0 + walk
    gyr = gyr * (1.0 + p.gyr_scale_error * rng.standard_normal(3))
    gyr = gyr + gyr_bias + p.gyr_noise_rads * rng.standard_normal((n, 3))
    a_lim = p.acc_range_g * G_MPS2
    g_lim = np.radians(p.gyr_range_dps)
    return np.clip(acc, -a_lim, a_lim), np.clip(gyr, -g_lim, g_lim), gyr_bias


def _sample_times(p: SimParams, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` sample times at ``p.rate_hz`` from 0, with ``p``'s timing jitter."""
    dt = 1.0 / p.rate_hz
    t = np.arange(n) * dt
    if p.errors and p.jitter_s > 0:
        t = t + np.clip(rng.normal(0.0, p.jitter_s, n), -0.3 * dt, 0.3 * dt)
        t[0] = max(t[0], 0.0)
    return t


def _simulation(p: SimParams, t: np.ndarray, bout: _Bout, rng: np.random.Generator, params: dict[str, Any]) -> Simulation:
    """The simulation of ``p``'s sensor (its errors drawn from ``rng``) reading ``bout`` at the times ``t``."""
    acc, gyr, gyr_bias = _sensor_errors(p, bout.acc, bout.gyr, rng) if p.errors else (bout.acc, bout.gyr, None)
    q = mount_rotation(p.mount_euler_deg).as_quat()
    truth = SimTruth(
        steps=bout.steps,
        t_s=t,
        tilt_deg=bout.tilt,
        obliquity_deg=bout.obl,
        rotation_deg=bout.rot,
        mount_quat_wxyz=np.array([q[3], q[0], q[1], q[2]]),
        gait_start_s=p.stand_s,
        params=params,
        vertical_m=bout.vertical,
        gyr_bias_rads=gyr_bias,
    )
    n = t.shape[0]
    batch = ImuBatch(t_s=t, acc_mps2=acc, gyr_rads=gyr, seq=np.arange(n), time_base="session")
    return Simulation(batch=batch, truth=truth, params=p)


def simulate(params: SimParams) -> Simulation:
    """Simulate a session. Deterministic for given ``params`` (seeded)."""
    p = params
    rng = np.random.default_rng(p.seed)
    rng_var = np.random.default_rng([p.seed, 1])
    n = max(int(round(p.seconds * p.rate_hz)), 1)
    t = _sample_times(p, n, rng)
    t_end = float(t[-1]) + 1.0 / p.rate_hz
    bout = _ideal_bout(p, rng_var if p.variability else None, t, t_end)
    return _simulation(p, t, bout, rng, p.to_dict())


def simulate_session(bouts: Sequence[SimParams]) -> Simulation:
    """Several bouts back to back on one sensor, e.g. walking, running, walking, each from standing to
    standing: a treadmill session with its warm-up, its run and its cool-down.

    Every bout but the first starts standing (``stand_s > 0``) and every bout but the last ends standing
    (``end_stand_s > 0``), so the motion is continuous from one to the next; they share the sample rate,
    the mounting and the static tilt. Each bout's gait comes from its own parameters (and seed); the sensor
    errors, one set over the whole session, from the first bout's. The truth's ``params`` are the first
    bout's with ``"bouts"``: every bout's, and its steps are in session time.
    """
    ps = list(bouts)
    if not ps:
        raise SimParamsError("a session needs at least one bout")
    p0 = ps[0]
    for i, p in enumerate(ps):
        for name in ("rate_hz", "mount_euler_deg", "tilt_offset_deg"):
            if getattr(p, name) != getattr(p0, name):
                raise SimParamsError(f"bout {i + 1} has another {name} than bout 1: one sensor, one mounting")
        if i > 0 and p.stand_s <= 0:
            raise SimParamsError(f"bout {i + 1} must start standing (stand_s > 0) to follow bout {i}")
        if i < len(ps) - 1 and p.end_stand_s <= 0:
            raise SimParamsError(f"bout {i + 1} must end standing (end_stand_s > 0) to precede bout {i + 2}")
    dt = 1.0 / p0.rate_hz
    sizes = [max(int(round(p.seconds * p.rate_hz)), 1) for p in ps]
    starts = np.r_[0, np.cumsum(sizes)]
    n = int(starts[-1])
    if n > MAX_SAMPLES:
        raise SimParamsError(f"the bouts hold {n} samples together; at most {MAX_SAMPLES}")
    rng = np.random.default_rng(p0.seed)
    t = _sample_times(p0, n, rng)
    parts: list[_Bout] = []
    for p, i0, i1 in zip(ps, starts[:-1], starts[1:], strict=True):
        off = float(i0) * dt
        rng_var = np.random.default_rng([p.seed, 1]) if p.variability else None
        b = _ideal_bout(p, rng_var, t[i0:i1] - off, float(i1 - i0) * dt)
        steps = [replace(s, t_ic_s=s.t_ic_s + off, t_fc_s=s.t_fc_s + off) for s in b.steps]
        parts.append(replace(b, steps=steps))
    arrays = {f.name: np.concatenate([getattr(b, f.name) for b in parts]) for f in fields(_Bout) if f.name != "steps"}
    bout = _Bout(**arrays, steps=[s for b in parts for s in b.steps])
    params = {**p0.to_dict(), "bouts": [p.to_dict() for p in ps]}
    return _simulation(p0, t, bout, rng, params)


def _truth_steps(
    sc: _Schedule,
    dyn: _Dynamics,
    knots: dict[str, tuple[np.ndarray, np.ndarray]],
    t: np.ndarray,
    t_end: float,
) -> tuple[np.ndarray, list[TruthStep]]:
    """Vertical displacement at the samples and the per-step truth."""
    # dense grid per window, integrated from the exact boundary state (Simpson)
    m_pts = 129
    u = np.linspace(0.0, 1.0, m_pts)
    tg = dyn.w_start[:, None] + dyn.w_len[:, None] * u
    az = dyn(tg.ravel())[:, 2].reshape(tg.shape)
    h = dyn.w_len[:, None] * (u[1] - u[0])
    vz = dyn.v_boundary[:-1, 2][:, None] + cumulative_simpson(az, dx=1.0, axis=1, initial=0.0) * h
    pz = dyn.p_boundary[:-1, 2][:, None] + cumulative_simpson(vz, dx=1.0, axis=1, initial=0.0) * h
    # vertical at the samples: cubic Hermite between grid points
    m = np.clip(np.searchsorted(dyn.w_start, t, side="right") - 1, 0, len(dyn.w_start) - 1)
    x = (t - dyn.w_start[m]) / dyn.w_len[m] * (m_pts - 1)
    j = np.clip(np.floor(x).astype(np.int64), 0, m_pts - 2)
    r = np.clip(x - j, 0.0, 1.0)
    hh = h[m, 0]
    p0, p1, v0, v1 = pz[m, j], pz[m, j + 1], vz[m, j], vz[m, j + 1]
    h00 = 2 * r**3 - 3 * r**2 + 1
    h10 = r**3 - 2 * r**2 + r
    h01 = -2 * r**3 + 3 * r**2
    h11 = r**3 - r**2
    vertical = h00 * p0 + h10 * hh * v0 + h01 * p1 + h11 * hh * v1
    vertical = np.where(t < dyn.w_start[0], 0.0, vertical)

    # per-step truth for the complete steps within the recording (knot indices: see _angle_knots)
    kc = min(int(np.searchsorted(sc.ic[1:], t_end, side="right")), sc.K - 1)
    k = np.flatnonzero(sc.s[:kc] > 0.0)  # (none is still after the final standing has begun)
    kc = k.shape[0]
    wi = k + 1
    y_obl, y_tilt, y_rot = knots["obliquity"][1], knots["tilt"][1], knots["rotation"][1]
    obl3 = np.stack([y_obl[1 + 2 * k], y_obl[2 + 2 * k], y_obl[3 + 2 * k]])
    tilt3 = np.stack([y_tilt[1 + 2 * k], y_tilt[2 + 2 * k], y_tilt[3 + 2 * k]])
    cpd = sc.side[k] * (obl3[1] - obl3[0])
    rot_range = np.abs(y_rot[2 + k] - y_rot[1 + k])
    fz = (az[wi] + G_MPS2) / G_MPS2
    early = (tg[wi] - sc.ic[k][:, None]) <= 0.2 * sc.c[k][:, None]
    impact = np.where(early, fz, -np.inf).max(axis=1)
    vosc = 100.0 * np.ptp(pz[wi], axis=1)
    walk = sc.gait == "walk"
    cols = zip(
        np.where(sc.side[k] > 0, "L", "R").tolist(),
        sc.ic[k].tolist(),
        (sc.ic[k] + sc.c[k]).tolist(),
        sc.T[k].tolist(),
        sc.c[k].tolist(),
        np.maximum(sc.T[k] - sc.c[k], 0.0).tolist(),
        (np.maximum(sc.c[k] - sc.T[k], 0.0) if walk else np.zeros(kc)).tolist(),
        cpd.tolist(),
        np.ptp(obl3, axis=0).tolist(),
        np.ptp(tilt3, axis=0).tolist(),
        rot_range.tolist(),
        vosc.tolist(),
        impact.tolist(),
        fz.max(axis=1).tolist(),
        sc.s[k].tolist(),
        strict=True,
    )
    steps = [TruthStep(*row) for row in cols]
    return vertical, steps


# ---------------------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------------------


class SimulatorSource(Source):
    """Streams a simulation as small ``ImuBatch`` chunks, like BLE notifications.

    Parameters
    ----------
    sim : SimParams or Simulation
        What to stream (a ``SimParams`` is simulated at construction).
    pace : float
        1.0 = real time, 2.0 = twice as fast, 0 = as fast as possible.
    chunk : int
        Samples per batch (8-20 is notification-like).
    """

    def __init__(self, sim: SimParams | Simulation, pace: float = 1.0, chunk: int = 10) -> None:
        if not (isinstance(pace, int | float) and math.isfinite(pace) and pace >= 0):
            raise ValueError(f"pace must be >= 0 (0 = as fast as possible), got {pace!r}")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
        self.simulation = sim if isinstance(sim, Simulation) else simulate(sim)
        self.pace = float(pace)
        self.chunk = chunk
        p = self.simulation.params
        self.info = SourceInfo(
            name="simulator",
            protocol="simulator",
            rate_hz=p.rate_hz,
            has_gyro=True,
            metadata={"params": p.to_dict()},
        )
        self._closed = False

    @property
    def truth(self) -> SimTruth:
        return self.simulation.truth

    async def close(self) -> None:
        self._closed = True

    async def events(self) -> AsyncIterator[SourceEvent]:
        batch = self.simulation.batch
        n = len(batch)
        yield SourceStatus("connected", 0.0, "simulated sensor streaming")
        start = time.monotonic()
        for i in range(0, n, self.chunk):
            if self._closed:
                return
            part = batch.slice(i, min(i + self.chunk, n))
            if self.pace > 0:
                due = start + float(part.t_s[-1]) / self.pace
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif i % (self.chunk * 64) == 0:
                await asyncio.sleep(0)
            yield part
        yield SourceStatus("stopped", float(batch.t_s[-1]), "end of the simulated session")


__all__ = [
    "MAX_SAMPLES",
    "SimParams",
    "SimParamsError",
    "SimTruth",
    "Simulation",
    "SimulatorSource",
    "TruthStep",
    "mount_rotation",
    "pelvis_matrices",
    "simulate",
    "simulate_session",
]
