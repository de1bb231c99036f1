"""Gait events from a sacral accelerometer: initial contact (IC), final contact (FC, toe-off), gait state.

Everything here works on the vertical specific force ``a_v`` (m/s², gravity included, up positive), which
needs no mounting calibration and no gyroscope: the accelerometer is projected on its own slowly low-passed
direction (the gravity direction; the mean of the specific force over whole steps is gravity). A pelvis
tilting by a few degrees changes ``a_v`` by well under 1 %.

Method (see docs/dsp_gait.md for the reasoning and the literature):

* The gravity direction is the mean specific force since the start until the low-pass has had one time
  constant, then the low-pass (a stream that starts mid-stride has a sound vertical within a stride).
* ``a_v`` is scaled so that the tracked gravity's magnitude, low-passed (``level_hz``), reads 1 g: the levels
  below are excesses over 1 g of a few hundredths of a g, and an accelerometer's scale is a few percent off.
* ``a_v`` is low-passed causally (Butterworth, ``lowpass_hz``); its group delay at low frequency (of the
  digital filter as designed) is subtracted from every event time.
* **Initial contact**: the foot strike is the steepest rise of ``a_v`` of the step (the end of the flight
  phase in running, the heel-strike loading in walking). A rise is triggered when ``a_v`` crosses
  ``(1 + trigger_g) g`` upwards, outside a refractory time after the last IC that scales with the step
  period; the steepest slope near the trigger is found, and its tangent is extrapolated down to the
  lowest ``a_v`` just before it (the flight floor in running, the pre-contact trough in walking). The
  crossing of tangent and floor is the IC (the classic "tangent onset" construction). Walking, a rise after
  ``a_v`` fell back under 1 g since the trigger is a rebound of the heel strike's loading: the steepest
  rise up to the first peak after the trigger is taken instead.
* **Running or walking** per step: running if ``a_v`` falls below ``flight_g`` g between the step's IC and
  the next one (flight = free fall = 0 g), unless the step is too slow for running (``run_max_step_s``).
* **Final contact, running**: the last fall of ``a_v`` through the body-weight level (the mean of ``a_v``
  over the step) before the flight floor, extrapolated along its tangent (the slope over +-20 ms) down to
  0 g, at the latest at the flight floor: the end of the force pulse.
* **Final contact, walking** (no flight): toe-off of the trailing foot follows the other foot's loading
  peak: after that peak ``a_v`` dips while the trailing foot unloads and rises again as it leaves the
  ground (push-off ends); the final contact is the steepest rise within ``FC_RISE_SHARE`` of a step after the
  loading peak (the first high not outdone within ``LOAD_PEAK_HOLD_S``; where there is no dip, the
  flattest point of the fall).

Streaming: every decision reads a window of fixed size around an event and the state left by earlier
events only, and waits until that window has arrived, so feeding samples whole or in chunks of any size
gives identical events. The look-ahead after a trigger is ``confirm_s`` (``walk_rise_s`` while walking).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..firmware_protocols.batch import G_MPS2
from ._gait_ring import SampleRing
from ._inputs import MIN_RATE_HZ, RATE_TOLERANCE
from ._lowpass import Lowpass, butter_lowpass_sos

__all__ = ["EventParams", "GaitEventDetector", "GaitState", "StepEvents", "StateChange"]

FC_RISE_SHARE = 0.27
"""Walking final contact: the window after the next step's loading peak, as a share of the step, in which
the steepest rise of ``a_v`` is the trailing foot's toe-off (about 0.15 s at 110 steps/min)."""

LOAD_PEAK_HOLD_S = 0.05
"""Walking final contact: the next step's loading peak is the first high of ``a_v`` after its steepest rise
that no sample exceeds within this long, s (a bump on the climb to the peak, 30-40 ms before a higher
sample in the real walks, is not the peak; the fall from the peak into the trough lasts about 0.1 s)."""

LEVEL_MAX_OFF = 0.1
"""Largest scale error of the accelerometer that the 1 g level of ``a_v`` allows for (``EventParams.level_hz``):
MEMS accelerometers are specified to a few percent."""


GaitState = Literal["standing", "walking", "running"]


def _fast_len(n: int) -> int:
    """The smallest length >= ``n`` with no prime factor above 5 (``scipy.fft.next_fast_len(n, real=True)``,
    which the tests compare it with; importing ``scipy.fft`` costs 50-90 ms at every start)."""
    m = max(1, n)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def trailing_max(x: np.ndarray, w: int) -> np.ndarray:
    """``out[i] = max(x[max(0, i - w + 1) : i + 1])``: the maximum of the ``w`` samples up to each sample
    (fewer at the start), for a 1-D ``x`` of finite values; ``scipy.ndimage.maximum_filter1d(x, w,
    origin=(w - 1) // 2, mode="nearest")`` without importing ``scipy.ndimage`` (40-100 ms, which the tests
    compare it with).

    Van Herk / Gil-Werman: ``x`` after ``w - 1`` copies of ``x[0]``, cut into blocks of ``w``; a window of
    ``w`` samples spans the end of one block and the start of the next, so its maximum is that of the
    first block's suffix maximum and the second's prefix maximum (a few passes, whatever ``w``)."""
    n = x.shape[0]
    if n == 0 or w <= 1:
        return x.copy()
    m = n + w - 1
    xp = np.full(-(-m // w) * w, -np.inf)
    xp[: w - 1] = x[0]
    xp[w - 1 : m] = x
    blocks = xp.reshape(-1, w)
    prefix = np.maximum.accumulate(blocks, axis=1).reshape(-1)
    suffix = np.maximum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    return np.maximum(suffix[:n], prefix[w - 1 : m])


def settled_argmax(x: np.ndarray, h: int, complete: bool) -> int | None:
    """Index of the first positive record of ``x`` (a value above 0 and above every one before it) that no
    value within the next ``h`` samples exceeds; else, once ``complete``, ``np.argmax(x)``; None while that
    is undecided. ``x`` is a window, or as much of its start as has been seen (``complete`` when all of
    it). With ``h <= 0``, or ``h >= len(x) - 1`` for a whole window, this is ``np.argmax(x)`` once complete
    (the last record is the first maximum)."""
    n = x.shape[0]
    if n == 0 or (h <= 0 and not complete):
        return None
    if h <= 0:
        return int(np.argmax(x))
    rec = np.flatnonzero(np.concatenate(([True], x[1:] > np.maximum.accumulate(x)[:-1])))
    # the next record of each; after the last one: none in a whole window, none yet seen otherwise
    nxt = np.append(rec[1:], n + h if complete else n)
    ok = (nxt - rec > h) & (x[rec] > 0)
    ok[-1] |= complete
    k = np.flatnonzero(ok)
    return int(rec[k[0]]) if k.size else None


def _step_mean(x: np.ndarray) -> float:
    """Mean of a 1-D window: its samples summed by ``np.add.reduceat`` (as :func:`_step_means` does for many
    windows at once: the same bits, wherever the window lies), divided by their number."""
    return float(np.add.reduceat(x, [0])[0] / x.shape[0]) if x.shape[0] else float("nan")


def _step_means(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`_step_mean` of the windows ``x[..., a_k:b_k]`` (``a_k < b_k``) along the last axis, all in one
    call: each window summed over its own samples, so its mean does not depend on the other windows nor on
    where ``x`` begins (the entries from a window's end to the next start are not used)."""
    idx = np.empty(2 * a.shape[0], dtype=np.intp)
    idx[0::2], idx[1::2] = a, b
    if int(b.max()) >= x.shape[-1]:  # reduceat indices must be inside x: one more sample, never summed
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (1,))], axis=-1)
    return np.add.reduceat(x, idx, axis=-1)[..., 0::2] / (b - a)


def _first_rise(fl: np.ndarray, j_b: np.ndarray, flight_mps2: float) -> tuple[np.ndarray, np.ndarray]:
    """ICs out of a flight phase whose force rises in two stages: the steepest point of the first stage.

    ``fl``: rows of ``a_v`` ending at the steepest rise of a step (the last column); ``j_b``: the column of
    each row's floor. A heel or mid-foot strike often rises in two stages, an impact transient whose peak
    already exceeds the body weight (1 g: the foot is on the ground), a dip, then the main rise to the
    active peak; the steepest point of the whole rise is then on the second stage, 20-40 ms after the
    contact began. Returns ``(has, j)``: the rows whose floor is a flight (below ``flight_mps2``) with a
    local peak of at least 1 g between the floor and the last column, and for them the column ``j`` of the
    steepest sample of the rise up to that first peak (slope ``fl[j] - fl[j - 1]``; 0 where ``has`` is
    false). A walking trough (no flight) is left alone: there the loading rise is one stage."""
    d = fl[:, 1:] - fl[:, :-1]  # d[:, j] = fl[:, j + 1] - fl[:, j]
    after = np.arange(d.shape[1])[None, :] >= j_b[:, None]  # d[:, j] from the floor on
    # peak[:, j]: a local peak of at least 1 g at column j + 1, after the floor
    peak = (d[:, :-1] >= 0) & (d[:, 1:] < 0) & (fl[:, 1:-1] >= G_MPS2) & after[:, :-1]
    rows = np.arange(fl.shape[0])
    has = peak.any(axis=1) & (fl[rows, j_b] < flight_mps2)
    j1 = np.argmax(peak, axis=1) + 1  # the first peak's column
    rise = np.where(after & (np.arange(d.shape[1])[None, :] < j1[:, None]), d, -np.inf)
    j = np.where(has, np.argmax(rise, axis=1) + 1, 0)
    return has, j


def _dc_group_delay(sos: np.ndarray) -> float:
    """Group delay at 0 Hz of a digital filter in second-order sections, samples.

    The group delay of a polynomial ``sum_k p_k z^-k`` at 0 Hz is ``sum_k k p_k / sum_k p_k``; a section's is
    its numerator's minus its denominator's, and the sections' delays add."""
    k = np.arange(3.0)
    return float(sum(k @ s[:3] / s[:3].sum() - k @ s[3:] / s[3:].sum() for s in sos))


BLOCK_S = 10.0
"""Longer chunks are processed in blocks of this length (s), but of at least ``BLOCK_MIN_N`` samples, so that
the ring buffers (a block and the open steps before it) never overflow."""

BLOCK_MIN_N = 8192
"""Smallest block, samples. A block has a fixed cost (its trigger levels, the onsets and final contacts of
its steps in one go each, the filter calls), so blocks are long at usual rates (200 Hz: 41 s; see
docs/performance.md). From about 820 Hz on they are ``BLOCK_S`` long: the largest buffers, those of the
highest rates, are as large as with ``BLOCK_S`` alone."""

# ring channels
_T, _AV, _AF, _AP = 0, 1, 2, 3


@dataclass(frozen=True)
class EventParams:
    """Parameters of :class:`GaitEventDetector` (frozen).

    Attributes
    ----------
    lowpass_hz : float
        Cut-off of the causal 2nd-order Butterworth low-pass on ``a_v``, Hz (clipped to 0.4 x rate).
    gravity_hz : float
        Cut-off of the low-pass that tracks the gravity direction in the sensor frame, Hz.
    level_hz : float
        Cut-off of the low-pass of that tracked gravity's magnitude, the level that ``a_v`` is scaled to
        read as 1 g, Hz. An accelerometer's scale is a few percent off (the real walks' sensors read
        0.996-1.046 g at rest), and the levels below are excesses over 1 g of no more than 0.02-0.05 g: at
        rest on a sensor reading 1.02 g, the missed-step recovery took the quiet sway for steps. The
        magnitude is tracked from the end of the gravity low-pass' start-up on (before it, the mean force of
        a stream that starts mid-stride need not be 1 g); the level starts at 1 g and stays within
        ``LEVEL_MAX_OFF`` of it (a scale error, not a stream in other units).
    trigger_g : float
        Smallest trigger height above 1 g, in g.
    trigger_frac : float
        A rise is triggered when ``a_v`` exceeds 1 g plus this fraction of the largest excess of ``a_v``
        over 1 g in the preceding ``envelope_s`` (but at least ``trigger_g``).
    envelope_s : float
        Length of that look-back, s.
    confirm_s : float
        Look-ahead after a trigger within which the steepest rise is searched, s.
    onset_window_s : float
        Window before the steepest rise in which the pre-contact floor is searched, s.
    flight_g : float
        A step with ``a_v`` below this (in g) between its IC and the next is a running step, unless it is
        slower than ``run_max_step_s``.
    run_max_step_s : float
        A step longer than this (under 130 steps/min) is a walking step even when ``a_v`` dipped under
        ``flight_g``: runners do not run that slowly (preferred running cadences are 150-190 steps/min),
        while a loosely worn sensor that bounces at heel strike reads free fall for 10-30 ms in a walk.
        Not for an interval of over 1.5 step periods of a faster bout: two running steps, one IC missed or
        lost in between.
    min_step_s, max_step_s : float
        Plausible step times (220+ and 50 steps/min); longer intervals end a bout. While walking, a rise
        less than ``min_step_s`` after the last IC is no new IC (otherwise ``0.5 * min_step_s``).
    refractory_frac : float
        No new IC within this fraction of the current step period after an IC.
    standing_after_s : float
        Gait state becomes standing when no IC came for ``max(standing_after_s, 2.5 step periods)``.
    recover_frac, recover_g : float
        Missed-step recovery: when no rise crossed the trigger level within 1.4 step periods of the last
        IC, the first rise above ``recover_frac`` of the smaller of the envelope and the last step's own
        peak excess (at least ``recover_g`` g) after 0.6 step periods is taken.
    fc_settle_s : float
        Walking final contact: the steepest rise in its window, except that an earlier rise which no later
        sample of the window exceeds within this long is taken (the first such), so that a slow step is out
        within 150 ms of its final contact instead of at the end of a window of up to 0.3 s; 0 keeps the
        whole window. A window this long or shorter (steps of 0.37 s and shorter at 0.1 s) is unaffected. s.
    recover_early_s : float
        Steady gait is the last four or five step times within this of each other. There the recovery
        looks for the next IC one step period after the last IC, give or take this (if that ends sooner than
        1.4 periods), before it waits for 1.4 periods. s.
    recover_settle_s : float
        Walking, or a bout's first step: the first rise that crossed the recovery level after the last IC
        (in steady gait from one step period less ``recover_early_s`` on, otherwise from 0.6 periods) is
        taken as soon as no rise crossed the trigger level up to this long after it (and its IC is not before
        that point either; but see ``sharp_rise_s``), not at a deadline, so that the step it closes is out
        within 150 ms; a rise that did cross the trigger level within this long is the IC as before. 0: always
        wait for the deadlines. s.
    sharp_rise_s : float
        A settled rise (``recover_settle_s``) in steady gait whose IC comes before one step period less
        ``recover_early_s`` is still taken, from 0.6 periods on, if the rise is sharp: it crossed the recovery
        level within this long of its foot, as a heel strike's loading does (the slow rise out of the
        single-support trough takes longer; that one then waits for the deadlines). 0: never. s.
    walk_rise_s : float
        While walking, the steepest rise is searched this long after the trigger (the slow rise out of
        the single-support trough can cross the trigger level before the heel-strike rise), s; but only up
        to the first peak after the trigger when ``a_v`` fell under 1 g before the steepest rise (a rebound).
    fall_g, fall_window_s : float
        An IC needs ``a_v`` below ``(1 - fall_g)`` g somewhere in the ``fall_window_s`` before its rise,
        except while walking (the first step and running steps need it; see docs/dsp_gait.md).
    walk_ic_forward : bool
        Refine walking ICs with the forward specific force (the forward peak before the braking drop after
        heel strike, Zijlstra and Hof 2003), once the mount is known. Off by default: the drop is not always
        the heel strike's (a trunk sway or the trailing foot's push-off can make it), which moved simulated
        ICs by 15-60 ms, and on the real L5 data it changed the median error by only 2 ms; and with it the
        ICs would change character when the calibration completes.
    fwd_drop_g : float
        Smallest braking drop of the forward force after heel strike for that refinement, g.
    first_peak_frac : float
        If > 0, the first rise of a bout is a contact only if its peak excess over 1 g reaches this fraction
        of the next one's; a smaller one is taken for the weight shift of gait initiation (the body is
        loaded onto the stance leg while both feet are still down) and the bout starts at the next rise.
        Off by default: at 0.4 it removes a third of the gait-initiation extras in the real walks (IC F1
        +0.003), but streaming laterality loses 0.006 (docs/dsp_gait.md).
    ac_window_s : float
        Length of the window whose autocorrelation gives the step period for the refractory time, s.
    ac_every_s : float
        The autocorrelation step period is refreshed at an IC when it is older than this, s.
    ac_step_ratio : float
        The step-period peak of the autocorrelation is the first one reaching this fraction of the highest
        peak (the stride peak is often the highest). If that is the highest peak itself, the highest of
        the peaks within 20 % of half its lag is taken instead (a limp lowers the step peak).
    """

    lowpass_hz: float = 30.0
    gravity_hz: float = 0.3
    level_hz: float = 0.05
    trigger_g: float = 0.05
    trigger_frac: float = 0.6
    envelope_s: float = 1.5
    confirm_s: float = 0.05
    onset_window_s: float = 0.15
    flight_g: float = 0.4
    run_max_step_s: float = 0.46
    min_step_s: float = 0.25
    max_step_s: float = 1.2
    refractory_frac: float = 0.75
    standing_after_s: float = 2.0
    walk_ic_forward: bool = False
    fwd_drop_g: float = 0.1
    fall_g: float = 0.05
    walk_rise_s: float = 0.1
    fall_window_s: float = 0.35
    recover_frac: float = 0.3
    recover_g: float = 0.02
    recover_early_s: float = 0.1
    recover_settle_s: float = 0.15
    sharp_rise_s: float = 0.1
    fc_settle_s: float = 0.1
    first_peak_frac: float = 0.0
    ac_window_s: float = 3.0
    ac_step_ratio: float = 0.6
    ac_every_s: float = 1.5

    def validate(self, rate_hz: float) -> None:
        """Raise ``ValueError`` with a one-line reason if the parameters do not fit ``rate_hz``."""
        if not (np.isfinite(rate_hz) and rate_hz >= MIN_RATE_HZ * (1.0 - RATE_TOLERANCE)):
            raise ValueError(f"rate_hz must be a number >= {MIN_RATE_HZ:g} Hz for gait events, got {rate_hz}")
        if not (0 < self.gravity_hz < 2 and 2 <= self.lowpass_hz):
            raise ValueError("gravity_hz must be in (0, 2) Hz and lowpass_hz >= 2 Hz")
        if not 0 < self.level_hz <= self.gravity_hz:
            raise ValueError("level_hz must be in (0, gravity_hz] Hz")
        if not (0 < self.min_step_s < self.max_step_s <= 3):
            raise ValueError("need 0 < min_step_s < max_step_s <= 3 s")
        if self.confirm_s <= 0 or self.onset_window_s <= 0 or self.trigger_g <= 0:
            raise ValueError("confirm_s, onset_window_s and trigger_g must be > 0")
        if not 0 <= self.recover_early_s < 1:
            raise ValueError("recover_early_s must be in [0, 1) s (0: no early missed-step search)")
        if not 0 <= self.recover_settle_s < 1:
            raise ValueError("recover_settle_s must be in [0, 1) s (0: the missed-step recovery waits for its deadline)")
        if not 0 <= self.sharp_rise_s < 1:
            raise ValueError("sharp_rise_s must be in [0, 1) s (0: a settled rise's IC never before the steady-gait window)")
        if not 0 <= self.fc_settle_s < 1:
            raise ValueError("fc_settle_s must be in [0, 1) s (0: the walking final contact's whole window)")


@dataclass(frozen=True)
class StepEvents:
    """The events of one step (stance foot unknown here), from its IC to the next IC.

    Indices are absolute sample indices since the last reset; ``*_t_s`` are times (s) with sub-sample
    resolution. ``i_end`` is the last sample index whose data the step's metrics may use.
    """

    i_ic: int
    i_next_ic: int
    i_fc: int
    i_end: int
    t_ic_s: float
    t_next_ic_s: float
    t_fc_s: float
    running: bool
    bout_start: bool


@dataclass(frozen=True)
class StateChange:
    """The gait state changed at ``t_s`` (session time, s)."""

    t_s: float
    state: GaitState


class GaitEventDetector:
    """Streaming IC / FC detection and gait state from the accelerometer alone.

    Parameters
    ----------
    rate_hz : float
        Sample rate, Hz.
    params : EventParams, optional
        Defaults if ``None``.

    Attributes
    ----------
    steps_ : list of StepEvents
        Steps completed by the last :meth:`update` (replaced on every call).
    states_ : list of StateChange
        Gait-state changes found by the last :meth:`update`.
    state_ : {"standing", "walking", "running"}
        Current gait state.
    step_period_s_ : float
        Current step-period estimate (median of the last five steps), s; NaN before two ICs.
    n_samples_ : int
        Samples since the last reset.
    n_recovered_ : int
        Rises the missed-step recovery took for a step (they stayed under the trigger level) since the last
        reset.
    """

    def __init__(self, rate_hz: float, params: EventParams | None = None) -> None:
        self.rate_hz = rate_hz
        self.params = params
        p = params if params is not None else EventParams()
        p.validate(float(rate_hz))
        self._p = p
        fs = float(rate_hz)
        self._fs = fs
        fc = min(p.lowpass_hz, 0.4 * fs)
        self._lp = Lowpass(butter_lowpass_sos(2, fc, fs))
        self._lp_g = Lowpass(butter_lowpass_sos(2, p.gravity_hz, fs))
        self._lp_lev = Lowpass(butter_lowpass_sos(2, p.level_hz, fs))
        # low-frequency group delay of the digital low-pass, in samples (the analog sqrt(2) / (2 pi fc)
        # overstates it as fc nears Nyquist: 0.56 instead of 0.23 samples at 52 Hz)
        self._delay = _dc_group_delay(self._lp.sos)
        self.block_n = max(BLOCK_MIN_N, int(round(BLOCK_S * fs)))
        cap = int(np.ceil(3.0 * p.max_step_s * fs)) + self.block_n + 16
        self._ring = SampleRing(cap, 4)
        self._n_conf = max(2, int(round(p.confirm_s * fs)))
        self._n_onset = max(2, int(round(p.onset_window_s * fs)))
        self._n_fall = max(2, int(round(p.fall_window_s * fs)))
        self._n_back = max(2, int(round(0.04 * fs)))
        self._fall_level = (1.0 - p.fall_g) * G_MPS2
        self._half_min_step_s = 0.5 * p.min_step_s
        self._n_standing_min = int(round(p.standing_after_s * fs))
        self._n_fc_from = max(1, int(round(0.04 * fs)))  # the flight test starts this long after the IC
        self._fc_settle_n = int(round(p.fc_settle_s * fs))
        self._load_hold_n = max(1, int(round(LOAD_PEAK_HOLD_S * fs)))
        self._recover_settle_n = int(round(p.recover_settle_s * fs))
        self._sharp_n = int(round(p.sharp_rise_s * fs))
        self._n_run_max = p.run_max_step_s * fs  # (samples, not rounded) a longer step is not running
        self._n_rise_walk = max(self._n_conf, int(round(p.walk_rise_s * fs)))
        # walking look-ahead: the rise window, or the forward-force window of the IC refinement
        self._n_conf_walk = max(self._n_rise_walk, int(round(0.32 * fs))) if p.walk_ic_forward else self._n_rise_walk
        self._n_env = max(2, int(round(p.envelope_s * fs)))
        # columns of the windows read for every trigger candidate (see _precompute_onsets)
        self._cols_trig = np.arange(self._n_back + self._n_conf + 2)[None, :]
        self._cols_pre = np.arange(max(self._n_onset, self._n_fall) + 1)[None, :]
        self._n_ac_every = int(round(p.ac_every_s * fs))
        self._n_ac = int(round(p.ac_window_s * fs))
        # the autocorrelation lags of plausible step and stride periods
        self._ac_lags = (max(1, int(p.min_step_s * fs)), min(self._n_ac - 2, int(2.2 * p.max_step_s * fs)))
        # zero-padded against circular wrap: the lags read run to one past the longest plausible, and the
        # circular sum at lag L also holds the lag L - n_fft, which is empty when n_fft >= window + L; padded
        # to a length with small prime factors only (the transform is fastest there: 1152 instead of 2048 at
        # 200 Hz)
        self._n_ac_fft = _fast_len(self._n_ac + self._ac_lags[1] + 1)
        self._n_g_start = int(round(fs / (2 * np.pi * p.gravity_hz)))  # one time constant of the gravity low-pass
        # the unloading tangent of the running final contact is the slope over +-20 ms (a span in time, so
        # that the rule does not change with the sample rate; at least a sample either side)
        self._n_tan = max(1, int(round(0.02 * fs)))
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget everything (after a gap or a reconnect)."""
        self._ring.reset()
        self._zi: np.ndarray | None = None
        self._zi_g: np.ndarray | None = None
        self._zi_lev = self._lp_lev.rest_state(G_MPS2)
        self._g_n = 0
        self._g_sum = np.zeros(3)
        self._scan = 1
        self._last_ic: tuple[int, float, int] | None = None  # (index, frac index, steepest index)
        self._intervals: list[float] = []
        self._ac_period = float("nan")
        self._ac_at = -(1 << 60)
        self._recovered_ic = -1
        self._settled_ic = -1  # the last IC after which a settled recovery search was made in vain
        self._early_ic = -1  # the last IC after which no early recovery search is made (one was made in vain, or
        # the recovery found that IC)
        self._last_peak = math.inf
        self._final = False
        self._c_lo = 0
        self._c_af: np.ndarray | None = None
        # closed steps in IC order, released in that order once complete:
        # [i_ic, f_ic, i_next, f_next, m_next, bout_start, running, StepEvents | None]
        self._queue: list[list[Any]] = []
        self._pre_on: dict[int, tuple[int, float, float | None]] = {}
        self._n_pending = 0  # walking steps in the queue still waiting for their final contact
        self._c_below: np.ndarray | None = None  # running count of cached samples below the flight level
        self._bout_start = True
        self.state_: GaitState = "standing"
        self.step_period_s_ = float("nan")
        self.steps_: list[StepEvents] = []
        self.states_: list[StateChange] = []
        self.n_samples_ = 0
        self.n_recovered_ = 0
        self._set_gates()

    # ------------------------------------------------------------------ input
    def vertical(self, acc_mps2: np.ndarray) -> np.ndarray:
        """Project a chunk of specific force (sensor frame, (N, 3), m/s²) on the tracked gravity direction.

        Advances the gravity low-pass state; called by :meth:`update`.
        """
        return self.vertical_up(acc_mps2)[0]

    def vertical_up(self, acc_mps2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`vertical` and the tracked up direction: ``(a_v (N,) m/s², up (N, 3) unit, sensor frame)``.

        Advances the gravity low-pass state. Pass the ``a_v`` on to :meth:`update` as ``acc_v_mps2``.
        """
        n = acc_mps2.shape[0]
        g_lp = np.empty((n, 3))
        # start-up: the mean specific force since the start (summed in sample order) until the low-pass has
        # had its time constant; a stream that starts mid-stride then has a sound vertical within a stride
        # instead of one tilted towards the first sample's force for seconds
        k = max(0, min(n, self._n_g_start - self._g_n))
        if k:
            cs = np.cumsum(np.concatenate([self._g_sum[None, :], acc_mps2[:k]]), axis=0)[1:]
            g_lp[:k] = cs / (self._g_n + np.arange(1, k + 1, dtype=np.float64))[:, None]
            self._g_sum = cs[-1]
            self._g_n += k
            if self._g_n >= self._n_g_start:
                self._zi_g = self._lp_g.rest_state(g_lp[k - 1])
        if k < n:
            if self._zi_g is None:  # (only when the start-up length is 0)
                self._zi_g = self._lp_g.rest_state(acc_mps2[k])
            lp, self._zi_g = self._lp_g(acc_mps2[k:].T, self._zi_g)
            g_lp[k:] = lp.T
        # element-wise arithmetic only: the result must not depend on how the stream is chunked
        gx, gy, gz = g_lp[:, 0], g_lp[:, 1], g_lp[:, 2]
        norm = np.sqrt(gx * gx + gy * gy + gz * gz)
        norm[norm < 1e-9] = 1e-9
        # the 1 g level: the magnitude low-passed, from 1 g at rest until the start-up's end (its first k
        # samples read 1 g)
        mag = norm.copy()
        mag[:k] = G_MPS2
        lev, self._zi_lev = self._lp_lev(mag, self._zi_lev)
        np.clip(lev, (1.0 - LEVEL_MAX_OFF) * G_MPS2, (1.0 + LEVEL_MAX_OFF) * G_MPS2, out=lev)
        av = (acc_mps2[:, 0] * gx + acc_mps2[:, 1] * gy + acc_mps2[:, 2] * gz) / norm * (G_MPS2 / lev)
        return av, g_lp / norm[:, None]

    def update(
        self, t_s: Any, acc_mps2: Any = None, *, acc_v_mps2: Any = None, acc_fwd_mps2: Any = None
    ) -> GaitEventDetector:
        """Process one chunk.

        Parameters
        ----------
        t_s : array_like, shape (N,)
            Sample times, s (uniformly sampled at ``rate_hz``).
        acc_mps2 : array_like, shape (N, 3), optional
            Specific force in any sensor frame, m/s².
        acc_v_mps2 : array_like, shape (N,), optional
            Vertical specific force (gravity included, up positive), m/s², instead of ``acc_mps2``.
        acc_fwd_mps2 : array_like, shape (N,), optional
            Horizontal specific force along the walking direction, m/s² (NaN where unknown, e.g. before
            the mount calibration); refines walking initial contacts.

        Returns
        -------
        self
        """
        t = np.asarray(t_s, dtype=np.float64).reshape(-1)
        n = t.shape[0]
        if acc_v_mps2 is not None:
            av = np.asarray(acc_v_mps2, dtype=np.float64).reshape(-1)
        elif acc_mps2 is not None:
            a = np.asarray(acc_mps2, dtype=np.float64)
            if a.shape != (n, 3):
                raise ValueError(f"acc_mps2 must have shape ({n}, 3), got {a.shape}")
            av = self.vertical(a) if n else np.zeros(0)
        else:
            raise ValueError("GaitEventDetector.update needs acc_mps2 or acc_v_mps2")
        if av.shape != (n,):
            raise ValueError(f"acc_v_mps2 must have shape ({n},), got {av.shape}")
        if not np.all(np.isfinite(av)):
            raise ValueError("acceleration contains NaN or inf; drop or repair those samples first")
        self.steps_ = []
        self.states_ = []
        if n == 0:
            return self
        if self._zi is None:
            self._zi = self._lp.rest_state(av[0])
        af, self._zi = self._lp(av, self._zi)
        if acc_fwd_mps2 is None:
            ap = np.full(n, np.nan)
        else:
            ap = np.asarray(acc_fwd_mps2, dtype=np.float64).reshape(-1)
            if ap.shape != (n,):
                raise ValueError(f"acc_fwd_mps2 must have shape ({n},), got {ap.shape}")
        rows = np.column_stack([t, av, af, ap])
        for b0 in range(0, n, self.block_n):
            self._c_af = None
            self._c_below = None
            self._ring.append(rows[b0 : b0 + self.block_n])
            self._process()
        self.n_samples_ = self._ring.n_total
        return self

    def flush(self) -> GaitEventDetector:
        """End of data: decide the last rise with the look-ahead there is, and emit every closed step
        (walking steps whose final contact was not found get a NaN FC)."""
        self.steps_ = []
        self.states_ = []
        self._final = True
        self._process()
        self._final = False
        for e in self._queue:
            if e[7] is None and not e[6]:
                e[7] = self._make_step(e[0], e[1], e[2], e[3], None, False, e[5], e[2])
        self._n_pending = 0
        self._fill_running()
        self._release()
        return self

    # ------------------------------------------------------------------ core
    def _time(self, frac_index: float) -> float:
        """Session time of a fractional absolute sample index (nominal rate between samples)."""
        i = int(np.floor(frac_index))
        i = min(max(i, self._ring.first), self._ring.n_total - 1)
        return self._ring.value(i, _T) + (frac_index - i) / self._fs

    def _autocorr_period(self, i_end: int) -> float:
        """Step period from the autocorrelation of ``a_v`` over the ``ac_window_s`` before ``i_end``, s.

        The autocorrelation of trunk acceleration peaks at the step and at the stride period
        (Moe-Nilssen and Helbostad 2004); the step period is the first peak in the plausible range that
        reaches ``ac_step_ratio`` of the highest one. NaN if too little data or no clear peak.
        """
        n_w = self._n_ac
        i0 = i_end - n_w
        if i0 < self._ring.first:
            return float("nan")
        x = self._af(i0, i_end)
        x = x - float(x.sum()) / n_w  # the window's mean (as ``x.mean()`` sums it)
        spec = np.fft.rfft(x, self._n_ac_fft)
        ac = np.fft.irfft(spec.real**2 + spec.imag**2, self._n_ac_fft)
        ac0 = float(ac[0])
        if ac0 <= 0:
            return float("nan")
        # the lags of the plausible range and one either side, normalised (only those are compared)
        lo, hi = self._ac_lags
        seg = ac[lo - 1 : hi + 2] / ac0
        mid = seg[1:-1]
        k = (np.nonzero((mid > seg[:-2]) & (mid >= seg[2:]) & (mid > 0.1))[0] + 1).tolist()
        if not k:
            return float("nan")
        vals = seg[k].tolist()
        top = max(range(len(vals)), key=vals.__getitem__)  # the first of the highest (as np.argmax)
        level = self._p.ac_step_ratio * vals[top]
        first = next(kk for kk, v in zip(k, vals, strict=True) if v >= level)
        if first == k[top]:
            # the highest peak is the stride when a peak stands at half its lag: a limp (left and right steps
            # of different lengths) lowers the step peak under ``ac_step_ratio`` of the stride peak, and
            # taking the stride for the step would make the refractory time skip every other step
            half = (lo - 1 + k[top]) / 2.0
            near = [j for j, kk in enumerate(k) if abs(lo - 1 + kk - half) <= 0.2 * half]
            if near:
                first = k[max(near, key=vals.__getitem__)]
        lag = lo - 1 + first
        if lag > self._p.max_step_s * self._fs:
            return float("nan")
        return lag / self._fs

    def _af(self, i0: int, i1: int) -> np.ndarray:
        """Low-passed ``a_v`` of samples ``i0 .. i1-1`` (from the per-call cache when it holds them)."""
        c = self._c_af
        if c is not None and i0 >= self._c_lo and i1 <= self._c_lo + c.shape[0]:
            return c[i0 - self._c_lo : i1 - self._c_lo]
        return self._ring.get(i0, i1)[:, _AF]

    @property
    def last_stride_s(self) -> float:
        """The last stride (the last two step intervals of the bout), s, or NaN when there are not two or
        either is off the median step period by more than half (a missed or an extra step): with left and
        right steps of different lengths, twice the median is not a stride."""
        if len(self._intervals) < 2 or not math.isfinite(self.step_period_s_):
            return float("nan")
        a, b = self._intervals[-2:]
        med = self.step_period_s_
        if not (0.5 * med <= a <= 1.5 * med and 0.5 * med <= b <= 1.5 * med):
            return float("nan")
        return a + b

    def _set_gates(self) -> None:
        """Derive from the step periods the sample counts that the scan compares at every trigger: the
        refractory time after an IC and the missed-step recovery window after it (None without a period,
        see :meth:`_recovery_period`). Called when the autocorrelation period is refreshed or reset: both
        follow it alone while it is finite, and when it is not, every IC refreshes it."""
        p, fs = self._p, self._fs
        per = self.step_period_s_ if math.isfinite(self.step_period_s_) else 0.0
        if math.isfinite(self._ac_period):
            per = self._ac_period
        self._refractory_n = int(round(min(max(p.refractory_frac * per, 0.8 * p.min_step_s), 0.7) * fs))
        rec = self._recovery_period()
        self._recovery_n = int(round(1.4 * rec * fs)) if math.isfinite(rec) else None
        # the early search: one period, give or take recover_early_s, after the last IC; 0: none (turned off,
        # no period yet, or it would end no sooner than the 1.4 periods)
        n_early = int(round((rec + p.recover_early_s) * fs)) if math.isfinite(rec) else 0
        on = p.recover_early_s > 0 and self._recovery_n is not None and n_early < self._recovery_n
        self._early_n = n_early if on else 0
        self._early_from_n = int(round((rec - p.recover_early_s) * fs)) if math.isfinite(rec) else 0

    def _process(self) -> None:
        self._scan_rises()
        self._fill_running()
        self._release()

    def _scan_rises(self) -> None:
        p = self._p
        n_avail = self._ring.n_total
        # trigger levels and crossings of everything not yet scanned, computed once per call: they depend
        # on the signal only (1 g + a fraction of the excess over 1 g in the preceding envelope window)
        lo = max(self._ring.first, self._scan - 1 - self._n_env)
        af = self._ring.get(lo, n_avail)[:, _AF]
        self._c_lo, self._c_af = lo, af  # read by _af() until the next append
        below = np.empty(af.shape[0] + 1, dtype=np.int64)
        below[0] = 0
        np.cumsum(af < p.flight_g * G_MPS2, out=below[1:])
        self._c_below = below  # below[k] = samples lo .. lo+k-1 under the flight level
        ext = af - G_MPS2
        if ext.shape[0] >= 2:
            env = trailing_max(ext, self._n_env)
            env_prev = np.concatenate([[ext[0]], env[:-1]])  # envelope before each sample
            lvl = np.maximum(p.trigger_g * G_MPS2, p.trigger_frac * env_prev)
            cross = lo + 1 + np.flatnonzero((ext[:-1] < lvl[1:]) & (ext[1:] >= lvl[1:]))
        else:
            cross = np.zeros(0, dtype=np.int64)
            env_prev = ext
        self._precompute_onsets(cross, lo, af)
        cross_l = cross.tolist()
        first = self._ring.first
        while True:
            if self._n_pending:
                self._resolve_pending(n_avail)
            start = self._scan
            if self._last_ic is not None:
                start = max(start, self._last_ic[0] + self._refractory_n)
            start = max(start, first + 1)
            if start >= n_avail:
                self._check_standing(n_avail)
                return
            k = bisect_left(cross_l, start)
            i_trig = cross_l[k] if k < len(cross_l) else -1
            # missed-step recovery: with a known step period, a step whose rise stayed under the trigger
            # level is searched with a lower level inside the window where it must be: in steady gait first
            # one period after the last IC, give or take recover_early_s; then (or else) from 0.6 periods
            # (at least) up to 1.4. Except while running, a settled rise in the window is taken at once
            dl, early = self._recovery_deadline()
            last_ic = self._last_ic
            if (dl is not None and last_ic is not None and self._recover_settle_n
                    and self.state_ != "running" and self._settled_ic != last_ic[0]):
                # walking (or a bout's first step, before its gait is known): the first rise over the recovery
                # level in the deadline's window (not within the refractory time) is taken once settled, if its
                # IC is not before that window, or, for a sharp rise, not before 0.6 periods (EventParams:
                # recover_settle_s, sharp_rise_s; docs/dsp_gait.md, latency); else the deadlines decide
                last, f_last = last_ic[0], last_ic[1]
                min_gap_n, gap_n = self._search_gaps_n(self._steady())
                w0 = max(start, last + gap_n)
                # (a rise that crossed the trigger level up to recover_settle_s after w0 is within that of any
                # rise found from w0 on: no search)
                i_low = -1
                if not 0 <= i_trig <= w0 + self._recover_settle_n:
                    i_low = self._low_crossing(w0, dl, lo, n_avail, env_prev, ext)
                if i_low >= 0 and not 0 <= i_trig <= i_low + self._recover_settle_n:
                    if n_avail <= i_low + max(self._recover_settle_n, self._confirm_n()) and not self._final:
                        self._scan = start
                        return
                    self._check_standing(i_low)
                    ic_from = max(f_last + min_gap_n, min(f_last + gap_n, i_low - self._sharp_n))
                    if self._on_trigger(i_low, (ic_from, math.inf)):
                        self._recovered_ic = last
                        self._recover_done(i_low, last)
                    else:
                        self._settled_ic = last  # (searched in vain: the deadline decides)
                    continue
            if dl is not None and (i_trig < 0 or i_trig > dl):
                if n_avail <= dl + self._confirm_n() and not self._final:
                    self._scan = start
                    return
                assert last_ic is not None  # (a deadline is set after an IC only)
                last, f_last = last_ic[0], last_ic[1]
                gap_n = self._search_gaps_n(early)[1]
                i_low = self._low_crossing(max(start, last + gap_n), dl, lo, n_avail, env_prev, ext)
                if early:
                    # not if a rise crossed the trigger level in the look-ahead already seen (a step a little
                    # late); and taken only if the IC it gives is where the step was due (the low level can be
                    # crossed by the slow rise out of the single-support trough, before a late heel strike)
                    if (i_low < 0 or 0 <= i_trig <= dl + self._confirm_n()
                            or not self._on_trigger(i_low, (f_last + self._early_from_n, f_last + self._early_n))):
                        self._early_ic = last  # nothing there: wait for the late deadline
                        continue
                    self._recover_done(i_low, last)
                    continue
                self._recovered_ic = last
                if i_low >= 0:
                    self._check_standing(i_low)
                    self._on_trigger(i_low)
                    self._recover_done(i_low, last)
                continue
            if i_trig < 0:
                self._scan = n_avail
                self._check_standing(n_avail)
                return
            # a bout ends (standing) if no rise came for long enough before this one
            self._check_standing(i_trig)
            if i_trig + self._confirm_n() >= n_avail and not (self._final and i_trig < n_avail):
                self._scan = i_trig
                return
            self._scan = i_trig + 1
            self._on_trigger(i_trig)

    def _low_crossing(self, w0: int, dl: int, lo: int, n_avail: int, env_prev: np.ndarray, ext: np.ndarray) -> int:
        """The missed-step recovery's rise: the first sample from ``w0`` on, before the deadline ``dl`` (of
        those held, ``n_avail``), where the excess ``ext`` (cached from ``lo``) crosses the recovery level;
        -1 if none. The level follows the last step's own peak too: when gait slows down to a stop, each
        heel strike is softer than the envelope of the faster steps before it."""
        p = self._p
        a0, a1 = max(w0 - 1, lo), min(dl + 1, n_avail)
        if a1 - a0 < 2:
            return -1
        lv = np.maximum(p.recover_g * G_MPS2, p.recover_frac * np.minimum(env_prev[a0 - lo : a1 - lo], self._last_peak))
        e = ext[a0 - lo : a1 - lo]
        up = np.flatnonzero((e[:-1] < lv[1:]) & (e[1:] >= lv[1:]))
        return a0 + 1 + int(up[0]) if up.size and a0 + 1 + int(up[0]) < dl else -1

    def _recover_done(self, i_low: int, last: int) -> None:
        """Count the recovery of the rise at ``i_low`` (after the IC at ``last``) and scan on after it."""
        self.n_recovered_ += 1
        self._scan = i_low + 1
        if self._last_ic is not None and self._last_ic[0] != last:
            self._early_ic = self._last_ic[0]  # (no early search after a step the recovery found)

    def _on_trigger(self, i_trig: int, near: tuple[float, float] | None = None) -> bool:
        """Locate the IC of the rise that crossed the trigger level at ``i_trig`` and hand it to
        :meth:`_accept_ic`; whether it was taken. ``near``: the fractional sample indices between which the IC
        must be (one outside is not handed over)."""
        walking = self.state_ == "walking"
        pre_on = None if walking else self._pre_on.get(i_trig)
        if pre_on is not None:
            m, pk_max, f_pre = pre_on
            if f_pre is None or (near is not None and not near[0] <= f_pre <= near[1]):
                return False
            return self._accept_ic(i_trig, f_pre, m, pk_max)
        w0 = i_trig - self._n_back
        w_end = min(i_trig + (self._n_rise_walk if walking else self._n_conf) + 1, self._ring.n_total)
        w = self._af(w0 - 1, w_end)
        if w.shape[0] < 2:
            return False
        w0 = w_end - w.shape[0] + 1  # index of w[1]
        slope = np.diff(w)  # slope[k] = af[w0 + k] - af[w0 + k - 1]
        k = int(np.argmax(slope))
        if walking:
            # a heel strike's loading can rebound: a_v peaks, falls back under body weight and rises again,
            # more steeply, within the rise window; timed on that second rise, the IC was about 100 ms late
            # (17.5 % of the real walks' ICs 75 ms or more late; docs/dsp_gait.md). When a_v was under 1 g
            # between the trigger and the steepest rise, the IC's rise is the one up to the first peak after
            # the trigger.
            j_t = i_trig - w0 + 1  # w[j_t]: the trigger sample
            if 0 <= j_t <= k and float(w[j_t : k + 1].min()) < G_MPS2:
                j_pk = j_t + int(np.argmax(slope[j_t:] < 0))  # (a fall follows: a_v went under 1 g after w[j_t])
                if j_pk > 0:
                    k = int(np.argmax(slope[:j_pk]))
        m = w0 + k
        s_m = float(slope[k])
        a_m = float(w[k + 1])
        fl = self._af(m - self._n_onset, m + 1)
        if walking:
            # walking: the trough right before the rise (heel strike ends a short dip of a_v)
            rising = np.flatnonzero(np.diff(fl) <= 0)
            j_b = int(rising[-1]) + 1 if rising.size else 0
        else:
            # running: the flight floor
            j_b = int(np.argmin(fl))
        floor = float(fl[j_b])
        i_floor = m - (fl.shape[0] - 1) + j_b
        if i_floor <= 1:
            return False  # the data start inside this rise: its onset was not observed
        m_ic, s_ic, a_ic = m, s_m, a_m
        if not walking:
            has, j1 = _first_rise(fl[None, :], np.array([j_b]), self._p.flight_g * G_MPS2)
            if has[0]:
                j = int(j1[0])
                m_ic, s_ic, a_ic = m - (fl.shape[0] - 1) + j, float(fl[j] - fl[j - 1]), float(fl[j])
        # a foot strike ends a fall: the body accelerated downwards (a_v < 1 g: flight, or the single-
        # support trough of walking) shortly before; a rise from standing (a weight shift) is no IC.
        # Required to start walking only: once walking, the previous contact already shows that the body
        # is in gait, and the softer steps of turning and stopping have only a shallow trough, if any
        pre = self._af(m - self._n_fall, m + 1)
        if not walking and float(pre.min()) > self._fall_level:
            return False
        if s_m <= 0 or s_ic <= 0:
            return False
        f_ic = m_ic - (a_ic - floor) / s_ic
        f_ic = max(f_ic, float(i_floor)) - self._delay
        if walking and self._p.walk_ic_forward:
            f_ap = self._walking_ic_fwd(f_ic, i_trig + self._n_conf_walk)
            if f_ap is not None:
                f_ic = f_ap
        if near is not None and not near[0] <= f_ic <= near[1]:
            return False
        return self._accept_ic(i_trig, f_ic, m)

    def _accept_ic(self, i_trig: int, f_ic: float, m: int, pk_max: float | None = None) -> bool:
        """Record the IC at fractional index ``f_ic`` (steepest rise ``m``): close the previous step. Whether
        it was taken (not a rise within the shortest step after the last IC).

        ``pk_max``: the largest ``af`` from ``m`` to the end of the running look-ahead, when known."""
        p = self._p
        # the look-ahead the scan waited for: closing the step below can switch the gait state, and with it
        # the look-ahead's length (standing to walking: 0.05 to 0.1 s), while only this much is sure to be held
        n_conf = self._confirm_n()
        ic = (int(round(f_ic)), f_ic, m)
        prev = self._last_ic
        if prev is not None:
            interval = (f_ic - prev[1]) / self._fs
            # a second rise inside the same contact; while walking, any step shorter than the shortest
            # plausible step (``min_step_s``): a walking step holds a double support and a single
            # support, and a rise that soon after a heel strike is its loading response
            if interval < (p.min_step_s if self.state_ == "walking" else self._half_min_step_s):
                return False
            if p.first_peak_frac > 0 and interval <= p.max_step_s and self._bout_start:
                pk = self._look_ahead(m, i_trig, n_conf)
                if pk.size and self._last_peak < p.first_peak_frac * (float(pk.max()) - G_MPS2):
                    # the bout's first rise was much smaller than this heel strike: the weight shift of
                    # gait initiation (still in double support), not a contact; the bout starts here
                    self._last_ic = None
                    prev = None
        if prev is not None:
            if interval <= p.max_step_s:
                self._close_step(prev, ic)
                iv = self._intervals
                iv.append(interval)
                del iv[:-5]
                srt = sorted(iv)
                h = len(srt) // 2
                self.step_period_s_ = srt[h] if len(srt) % 2 else 0.5 * (srt[h - 1] + srt[h])
            else:
                self._end_bout()
        self._last_ic = ic
        if pk_max is not None and n_conf == self._n_conf:
            # precomputed over af[m .. i_trig + n_conf], all held (see _precompute_onsets)
            self._last_peak = pk_max - G_MPS2
        else:
            pk = self._look_ahead(m, i_trig, n_conf)
            self._last_peak = float(pk.max()) - G_MPS2 if pk.size else math.inf
        # the step period changes slowly: refresh its autocorrelation estimate every ``ac_every_s``
        i_now = i_trig + self._n_conf
        if not math.isfinite(self._ac_period) or i_now - self._ac_at >= self._n_ac_every:
            self._ac_period = self._autocorr_period(i_now)
            self._ac_at = i_now
            self._set_gates()
        return True

    def _look_ahead(self, m: int, i_trig: int, n_conf: int) -> np.ndarray:
        """Low-passed ``a_v`` from the steepest rise ``m`` to the end of the look-ahead of ``n_conf`` samples
        after ``i_trig`` (as far as it is held): the rise's peak is its maximum."""
        return self._af(m, max(m + 1, min(i_trig + n_conf + 1, self._ring.n_total)))

    def _recovery_period(self) -> float:
        """The step period the missed-step recovery works with, s: the autocorrelation's, or, when that
        gives none (its window not full yet, or no clear peak), the median of the bout's step intervals once
        it has two; NaN otherwise."""
        if math.isfinite(self._ac_period):
            return self._ac_period
        return self.step_period_s_ if len(self._intervals) >= 2 else float("nan")

    def _recovery_deadline(self) -> tuple[int | None, bool]:
        """Last sample where the missed-step recovery looks for the next IC, and whether that is the early
        deadline (one step period and ``recover_early_s`` after the last IC; then 1.4 periods); (None,
        False) without a period or once the recovery ran after the last IC."""
        if self._last_ic is None or self._recovery_n is None or self._recovered_ic == self._last_ic[0]:
            return None, False
        last = self._last_ic[0]
        if self._early_n and self._early_ic != last:
            # only in steady gait (the bout's last steps differ by less than that margin), and not right after
            # a step the recovery found: when steps vary, as in a turn or when slowing down, a late step's
            # rise can follow a smaller bump, which the early search would take, and steps found on the
            # expected beat would keep the beat steady through a turn (the real walks: with the early
            # search always on, 33 of the 110 changed, one lost its sides for half its steps, and laterality
            # fell from 0.947 to 0.939; with these conditions and those of the search, none changes)
            if self._steady():
                return last + self._early_n, True
        return last + self._recovery_n, False

    def _steady(self) -> bool:
        """Steady gait: the bout's last four or five step times within ``recover_early_s`` of each other."""
        iv = self._intervals
        return len(iv) >= 4 and max(iv) - min(iv) <= self._p.recover_early_s

    def _min_gap_n(self) -> int:
        """Where the recovery search starts after the last IC: 0.6 autocorrelation periods (not the
        fallback of :meth:`_recovery_period`: with it, real walks lost 2 contacts and 0.2 % of their sides
        right), at least 0.8 of the shortest step."""
        per = self._ac_period if math.isfinite(self._ac_period) else 0.0
        return int(round(max(0.6 * per, 0.8 * self._p.min_step_s) * self._fs))

    def _search_gaps_n(self, steady: bool) -> tuple[int, int]:
        """Where the recovery searches start after the last IC, samples: the deadline's (:meth:`_min_gap_n`),
        and this search's: in steady gait one period less ``recover_early_s``, but not before the deadline's;
        otherwise the deadline's."""
        min_gap_n = self._min_gap_n()
        return min_gap_n, max(min_gap_n, self._early_from_n) if steady else min_gap_n

    def _confirm_n(self) -> int:
        """Look-ahead after a trigger: longer while walking, where the forward force refines the IC."""
        if self._final:
            return 0
        return self._n_conf_walk if self.state_ == "walking" else self._n_conf

    def _walking_ic_fwd(self, f_ic: float, i_limit: int) -> float | None:
        """Walking IC from the forward specific force (Zijlstra and Hof 2003): the forward peak just before
        the sharp braking drop that follows heel strike, searched around the vertical estimate ``f_ic``."""
        fs = self._fs
        c = int(round(f_ic))
        i0 = c - int(round(0.10 * fs))
        # never past the look-ahead that is always there when this runs (streaming equals batch)
        i1 = min(c + int(round(0.25 * fs)), i_limit - 3)
        if i1 - i0 < 8:
            return None
        x = self._ring.get(i0 - 2, i1 + 3)[:, _AP]
        if x.shape[0] != i1 - i0 + 5 or not np.all(np.isfinite(x)):
            return None
        # 5-point moving average, centred (inside the look-ahead window)
        xs = np.convolve(x, np.full(5, 0.2), mode="valid")  # xs[k] <-> index i0 + k
        d = np.diff(xs)
        k_d = int(np.argmin(d))
        n_pk = int(round(0.08 * fs))
        lo = max(0, k_d - n_pk)
        k_p = lo + int(np.argmax(xs[lo : k_d + 1]))
        n_after = int(round(0.06 * fs))
        drop = float(xs[k_p] - xs[k_d : k_d + n_after + 1].min())
        if drop < self._p.fwd_drop_g * G_MPS2:
            return None
        return float(i0 + k_p)

    def _end_bout(self) -> None:
        self._intervals = []
        self.step_period_s_ = float("nan")
        self._ac_period = float("nan")
        self._bout_start = True
        self._set_gates()

    def _close_step(self, prev: tuple[int, float, int], nxt: tuple[int, float, int]) -> None:
        """The step from ``prev`` IC to ``nxt`` IC is complete: find its gait and FC."""
        p = self._p
        i_ic, f_ic, _ = prev
        i_next, f_next, m_next = nxt
        lo = i_ic + self._n_fc_from
        hi = max(lo + 1, i_next + 1)
        cb, c0 = self._c_below, self._c_lo
        if cb is not None and lo >= c0 and hi < c0 + cb.shape[0]:
            # any sample of the window below the flight level (af is finite: the same as its minimum)
            running = bool(cb[hi - c0] > cb[lo - c0])
        else:
            seg = self._af(lo, hi)
            running = bool(seg.size and seg.min() < p.flight_g * G_MPS2)
        n_step = i_next - i_ic
        if running and n_step > self._n_run_max:
            # too slow to be running, unless about two steps of a running bout (one IC missed or lost)
            per = self.step_period_s_ * self._fs
            running = per <= self._n_run_max and n_step > 1.5 * per
        bout = self._bout_start
        self._bout_start = False
        self._queue.append([i_ic, f_ic, i_next, f_next, m_next, bout, running, None])
        if not running:
            self._n_pending += 1
        self._set_state("running" if running else "walking", f_next)

    def _running_fc(self, i_ic: int, i_next: int) -> float | None:
        seg = self._af(i_ic, i_next + 1)
        if seg.shape[0] < 4:
            return None
        k_pk = int(np.argmax(seg))
        k_fl = k_pk + int(np.argmin(seg[k_pk:]))
        if k_fl - k_pk < 2:
            return None
        # the last descent through the body's weight before the flight floor, followed along its tangent
        # down to 0 g (no contact force left), but not past the flight floor. The body-weight level is the
        # mean of ``a_v`` over the step (steady running: the mean vertical force over a step is the body
        # weight), not 1 g: a gain error of ``a_v`` or a tilted gravity estimate (which mixes the
        # anterior-posterior force in) moves both alike. The target is 0 g, not the floor: a short flight,
        # low-passed, does not reach free fall (docs/dsp_gait.md)
        level = _step_mean(seg[:-1])
        above = np.flatnonzero(seg[k_pk:k_fl] >= level)
        if above.size == 0:
            return None
        d = k_pk + int(above[-1])
        w = self._n_tan
        lo, hi = max(k_pk, d - w), min(k_fl, d + w)
        slope = (float(seg[hi]) - float(seg[lo])) / max(hi - lo, 1)
        if slope >= 0:
            return None
        a0, a1 = float(seg[d]), float(seg[d + 1])
        x_c = d + (a0 - level) / (a0 - a1) if a0 != a1 else float(d)
        x_fc = min(x_c + level / (-slope), float(k_fl))
        return i_ic + x_fc - self._delay

    def _resolve_pending(self, n_avail: int) -> None:
        """Walking steps: FC = the steepest rise after the loading peak of the next step, settled as soon as
        :func:`settled_argmax` allows (called while some are pending)."""
        limit_n = int(round(0.45 * self._fs))
        for e in self._queue:
            if e[6] or e[7] is not None:
                continue
            i_ic, f_ic, i_next, f_next, m_next, bout = e[:6]
            hi = m_next + limit_n
            seg = self._af(m_next, min(hi, n_avail))
            d = np.diff(seg)
            # the loading peak (the first high of a_v after the steepest rise that no sample exceeds within
            # LOAD_PEAK_HOLD_S: a bump on the climb is not the peak), then the steepest rise of a_v within
            # FC_RISE_SHARE of a step after it: the end of the trough as the trailing foot leaves
            k0 = settled_argmax(seg, self._load_hold_n, n_avail >= hi)
            k_fc = None
            if k0 is not None:
                wn = max(3, int(round(FC_RISE_SHARE * (i_next - i_ic))))
                k = settled_argmax(d[k0 : k0 + wn], self._fc_settle_n, d.shape[0] >= k0 + wn)
                if k is not None:
                    k_fc = k0 + k
            if k_fc is not None:
                f_fc = m_next + k_fc - self._delay
                e[7] = self._make_step(i_ic, f_ic, i_next, f_next, f_fc, False, bout, m_next + k_fc + 1)
                self._n_pending -= 1
            elif n_avail >= hi:
                e[7] = self._make_step(i_ic, f_ic, i_next, f_next, None, False, bout, i_next)
                self._n_pending -= 1

    def _has_pending(self) -> bool:
        return self._n_pending > 0

    def _release(self) -> None:
        """Emit the completed steps at the front of the queue, in IC order."""
        k = 0
        while k < len(self._queue) and self._queue[k][7] is not None:
            self.steps_.append(self._queue[k][7])
            k += 1
        if k:
            del self._queue[:k]

    def _fill_running(self) -> None:
        """Final contacts of the closed running steps, all at once (see :meth:`_running_fc`)."""
        todo = [e for e in self._queue if e[6] and e[7] is None]
        if not todo:
            return
        a = np.array([e[0] for e in todo])
        b = np.array([e[2] for e in todo])
        c = self._c_af
        if c is None or a.min() < self._c_lo or b.max() + 1 > self._c_lo + c.shape[0] or np.any(b - a < 3):
            self._fill_running_reference(todo)
            return
        fcs = self._running_fc_batch(c, self._c_lo, a, b)
        f_ic = np.array([e[1] for e in todo])
        f_next = np.array([e[3] for e in todo])
        has_fc = ~np.isnan(fcs)
        # the times of all of them at once (:meth:`_time` element-wise), the records as :meth:`_make_step`
        t = self._times(np.concatenate([f_ic, f_next, np.where(has_fc, fcs, f_ic)])).tolist()
        n = len(todo)
        i_fc = np.where(has_fc, np.rint(np.where(has_fc, fcs, 0.0)), b).astype(np.int64).tolist()
        nan = float("nan")
        new = object.__new__
        for j, (e, ok, ifc) in enumerate(zip(todo, has_fc.tolist(), i_fc, strict=True)):
            st = new(StepEvents)
            st.__dict__.update(i_ic=e[0], i_next_ic=e[2], i_fc=ifc, i_end=e[2], t_ic_s=t[j], t_next_ic_s=t[n + j],
                               t_fc_s=t[2 * n + j] if ok else nan, running=True, bout_start=e[5])
            e[7] = st

    def _fill_running_reference(self, todo: list[list[Any]]) -> None:
        """The readable form of :meth:`_fill_running` (step by step; also used where the cache does not hold
        the steps)."""
        for e in todo:
            fc = self._running_fc(e[0], e[2])
            e[7] = self._make_step(e[0], e[1], e[2], e[3], fc, True, e[5], e[2])

    def _times(self, frac_index: np.ndarray) -> np.ndarray:
        """:meth:`_time` of each of ``frac_index`` (the same arithmetic)."""
        i = np.floor(frac_index).astype(np.int64)
        i = np.minimum(np.maximum(i, self._ring.first), self._ring.n_total - 1)
        i0 = int(np.min(i))
        t = self._ring.get(i0, int(np.max(i)) + 1)[:, _T]
        return t[i - i0] + (frac_index - i) / self._fs

    def _running_fc_batch(self, af: np.ndarray, off: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """:meth:`_running_fc` for windows ``[a_k, b_k]`` (absolute, inclusive) of ``af`` starting at ``off``,
        element-wise the same arithmetic; NaN where there is no final contact."""
        rows = np.arange(a.shape[0])
        length = b - a + 1
        n_max = int(length.max())
        col = np.arange(n_max)[None, :]
        # row k holds af[a_k .. b_k], padded with copies of its last sample: the padding moves neither the
        # first maximum nor the first minimum after it
        seg = af[np.minimum((a - off)[:, None] + col, (b - off)[:, None])]
        k_pk = seg.argmax(axis=1)
        after = col >= k_pk[:, None]
        k_fl = np.where(after, seg, np.inf).argmin(axis=1)
        # the body-weight level of each step (the same arithmetic as the step-by-step form)
        g = _step_means(af, a - off, b - off)
        above = after & (col < k_fl[:, None]) & (seg >= g[:, None])
        has = above.any(axis=1)
        d = n_max - 1 - np.argmax(above[:, ::-1], axis=1)
        lo = np.maximum(k_pk, d - self._n_tan)
        hi = np.minimum(k_fl, d + self._n_tan)
        slope = (seg[rows, hi] - seg[rows, lo]) / np.maximum(hi - lo, 1)
        a0 = seg[rows, d]
        a1 = seg[rows, np.minimum(d + 1, n_max - 1)]
        same = a0 == a1
        x_c = np.where(same, d.astype(float), d + (a0 - g) / np.where(same, 1.0, a0 - a1))
        ok = (length >= 4) & (k_fl - k_pk >= 2) & has & (slope < 0)
        x_fc = np.minimum(x_c + g / np.where(ok, -slope, 1.0), k_fl)
        return np.where(ok, a + x_fc - self._delay, np.nan)

    def _precompute_onsets(self, cross: np.ndarray, lo: int, af: np.ndarray) -> None:
        """Running-mode IC of every trigger candidate not yet scanned whose windows are held, all at once
        (the same element-wise arithmetic as :meth:`_on_trigger`): ``_pre_on[i_trig] = (m, pk, f_ic)``, the
        steepest rise, the largest ``af`` from it to the end of the look-ahead, and the IC (None where the
        rise is no IC)."""
        self._pre_on = {}
        nb, nc, no, nf = self._n_back, self._n_conf, self._n_onset, self._n_fall
        n_pre = max(no, nf)
        # candidates (sorted) from the scan position on, whose look-back and look-ahead are held
        first, last = max(self._scan, max(lo, 1) + nb + 1 + n_pre), lo + af.shape[0] - nc - 1
        k0, k1 = np.searchsorted(cross, [first, last + 1]).tolist()
        if k1 <= k0:
            return
        c = cross[k0:k1]
        rows = np.arange(c.size)
        w = af[(c - (lo + nb + 1))[:, None] + self._cols_trig]  # af[c - nb - 1 .. c + nc]
        slope = w[:, 1:] - w[:, :-1]
        k = slope.argmax(axis=1)
        m = c - nb + k
        s_m = slope[rows, k]
        a_m = w[rows, k + 1]
        # the step's peak for the recovery level: af from the steepest rise to the end of the look-ahead
        pk = np.where(self._cols_trig > k[:, None], w, -np.inf).max(axis=1)
        # the onset and fall windows end at the steepest rise: one window holds both
        win = af[(m - (lo + n_pre))[:, None] + self._cols_pre]  # af[m - n_pre .. m]
        fl = win[:, n_pre - no :]
        pre = win[:, n_pre - nf :].min(axis=1)
        j_b = fl.argmin(axis=1)
        floor = fl[rows, j_b]
        i_floor = m - no + j_b
        has, j1 = _first_rise(fl, j_b, self._p.flight_g * G_MPS2)
        m_ic = np.where(has, m - no + j1, m)
        s_ic = np.where(has, fl[rows, j1] - fl[rows, np.maximum(j1 - 1, 0)], s_m)
        a_ic = np.where(has, fl[rows, j1], a_m)
        is_ic = (i_floor > 1) & (pre <= self._fall_level) & (s_m > 0) & (s_ic > 0)
        f_ic = np.maximum(m_ic - (a_ic - floor) / np.where(is_ic, s_ic, 1.0), i_floor) - self._delay
        f = [x if ok else None for x, ok in zip(f_ic.tolist(), is_ic.tolist(), strict=True)]
        self._pre_on = dict(zip(c.tolist(), zip(m.tolist(), pk.tolist(), f, strict=True), strict=True))

    def _make_step(
        self,
        i_ic: int,
        f_ic: float,
        i_next: int,
        f_next: float,
        f_fc: float | None,
        running: bool,
        bout: bool,
        i_end: int,
    ) -> StepEvents:
        t_fc = float("nan") if f_fc is None else self._time(f_fc)
        i_fc = i_next if f_fc is None else int(round(f_fc))
        return StepEvents(
            i_ic=i_ic,
            i_next_ic=i_next,
            i_fc=i_fc,
            i_end=max(i_end, i_next),
            t_ic_s=self._time(f_ic),
            t_next_ic_s=self._time(f_next),
            t_fc_s=t_fc,
            running=running,
            bout_start=bout,
        )

    def _set_state(self, state: GaitState, f_index: float) -> None:
        if state != self.state_:
            self.state_ = state
            self.states_.append(StateChange(self._time(f_index), state))

    def _check_standing(self, horizon: int) -> None:
        """Declare standing if no IC came within the timeout before sample ``horizon`` (exclusive)."""
        # the timeout is at least ``standing_after_s``: nothing to do before that
        if self._last_ic is None or horizon <= self._last_ic[0] + self._n_standing_min:
            return
        per = self.step_period_s_ if math.isfinite(self.step_period_s_) else self._p.max_step_s
        i_stop = self._last_ic[0] + int(round(max(self._p.standing_after_s, 2.5 * per) * self._fs))
        if horizon <= i_stop or self._has_pending():
            return
        self._set_state("standing", float(i_stop))
        self._last_ic = None
        self._end_bout()
