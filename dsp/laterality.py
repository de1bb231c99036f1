"""Laterality: which foot is on the ground in each step, from pelvis motion and the alternation of steps.

Single steps are ambiguous (published sacral methods name the stance side of a running step right only
about four times in five); pelvimon combines weak per-step evidence with the fact that steps alternate
L, R, L, R. The sequence is a two-state hidden Markov model: the hidden state is the stance side of the
current step; from one step to the next the side flips with probability ``1 - p_keep`` (a missed or an
extra step breaks the alternation). The forward recursion of that model (a running, parity-aware vote) is
evaluated causally, step by step, and its posterior is the step's ``laterality_confidence``.

Per-step evidence (physics, pelvis frame: x anterior, y left, z up), all signed so that positive means
"left stance":

* **Obliquity velocity after initial contact** (gyroscope x, rad/s): the unsupported side drops as the
  stance leg is loaded (contralateral pelvic drop), so during left stance the pelvis rolls to lift the left
  side: ``gyr_x > 0`` in early left stance.
* **Medio-lateral specific force over stance** (level frame y, m/s²): the ground reaction force of a foot
  placed beside the centre of mass pushes the body towards the other side: ``acc_y < 0`` during left
  stance.

Each feature is divided by a running mean of its magnitude (so that neither units nor gait speed matter)
and weighted by its own reliability, estimated online without any reference: a feature that names the side
of a step right with probability ``q`` changes sign between consecutive steps with probability
``q² + (1 - q)²`` (steps alternate), so the observed sign-alternation rate of each feature gives its ``q``
and its weight is the log-odds ``log(q / (1 - q))`` of a single sign (relative to ``q = 0.8``). The
weighted sum is turned into a bounded log-likelihood ratio. A gap or a new bout restarts the model at 50/50.

The side flips between consecutive steps with probability ``p_keep`` (strict alternation); after an
irregular step time less so, and after a step of about two step periods (an initial contact probably
missed, so the next detected step is on the same side) with probability ``p_keep_missed``.

Both features need up and the sign of forward, not the full mount calibration: until it is known, the
pipeline takes forward from the braking/propulsion moment of the steps so far (:class:`ForwardMoment`,
:class:`StepForward`), which is right after the first stride.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from ._lowpass import Lowpass, butter_lowpass_sos
from .records import Side

__all__ = ["ForwardMoment", "LateralityParams", "LateralityTracker", "StepForward"]

_SHORT_RUN = 16
"""Fewer steps than this in :meth:`LateralityTracker.update_many` are added one by one with :meth:`update`."""

_GRAVITY_HZ = 0.3
"""Cut-off of the low-pass that gives the mean vertical force (gravity) in :class:`ForwardMoment`, Hz."""


@dataclass(frozen=True)
class LateralityParams:
    """Parameters of :class:`LateralityTracker` (frozen).

    Attributes
    ----------
    p_keep : float
        Probability that the next step is on the other side (strict alternation), per step.
    p_keep_irregular : float
        The same for a step whose time is far from the current step period (a step may have been missed).
    gain : float
        Log-likelihood ratio per unit of normalised evidence.
    max_llr : float
        Largest magnitude of one step's log-likelihood ratio (one odd step cannot overturn a long,
        consistent history).
    p_keep_missed : float
        The same after a step that probably holds a missed initial contact (about two step periods long).
    scale_alpha : float
        Weight of the newest step in the running magnitude of each feature.
    reliability_prior : float
        Assumed single-step accuracy of every feature before its alternation has been observed (0.5..1);
        0.8 gives the feature weight 1.
    reliability_prior_n : float
        Weight of that assumption, in observed step pairs (a feature's weight follows its own alternation
        rate after a few times this many steps).
    max_reliability : float
        Upper bound of a feature's estimated single-step accuracy (bounds its weight).
    scale_prior_n : float
        Observations of a feature before its running magnitude is trusted: the ``n``-th observation counts
        ``n / (n + scale_prior_n)`` (the first one is its own magnitude, so divided by it, it would say
        "one typical step" however weak it was).
    """

    p_keep: float = 0.995
    p_keep_irregular: float = 0.8
    p_keep_missed: float = 0.3
    gain: float = 1.5
    max_llr: float = 3.0
    scale_alpha: float = 0.1
    reliability_prior: float = 0.8
    reliability_prior_n: float = 10.0
    max_reliability: float = 0.97
    scale_prior_n: float = 2.0


class LateralityTracker:
    """Causal forward filter over the alternation of steps.

    Parameters
    ----------
    params : LateralityParams, optional
        Defaults if ``None``.

    Attributes
    ----------
    side_ : {"L", "R"} or None
        Side of the last step passed to :meth:`update`.
    confidence_ : float
        Posterior probability (0.5..1) of ``side_``.
    reliability_ : list of float
        Estimated single-step accuracy of each feature (from its sign alternation), after the last update.
    """

    def __init__(self, params: LateralityParams | None = None) -> None:
        self.params = params
        self._p = params if params is not None else LateralityParams()
        self._scale: list[float] = []
        self._n_obs: list[float] = []
        self._n_alt: list[float] = []
        self._n_pairs: list[float] = []
        self.reliability_: list[float] = []
        self.reset()

    def reset(self) -> None:
        """Restart at 50/50 (after a gap, a reconnect or a new bout); the feature scales and reliabilities
        are kept."""
        self._logit_l: float | None = None
        self._last_sign: list[int] = [0] * len(self._scale)
        self.side_: Side | None = None
        self.confidence_ = 0.5

    def _reliability(self, k: int) -> float:
        """Single-step accuracy ``q`` of feature ``k`` from its sign-alternation rate ``q² + (1 - q)²``."""
        p = self._p
        q0 = p.reliability_prior
        alt0 = q0 * q0 + (1 - q0) * (1 - q0)
        n0 = p.reliability_prior_n
        alt = (self._n_alt[k] + alt0 * n0) / (self._n_pairs[k] + n0)
        q = 0.5 + 0.5 * math.sqrt(max(2.0 * alt - 1.0, 0.0))
        return min(q, p.max_reliability)

    def _size_features(self, n_f: int) -> None:
        """Per-feature state for ``n_f`` features (started afresh when their number changes)."""
        if len(self._scale) != n_f:
            self._scale = [math.nan] * n_f
            self._n_obs = [0.0] * n_f
            self._n_alt = [0.0] * n_f
            self._n_pairs = [0.0] * n_f
            self._last_sign = [0] * n_f

    def _normalise(self, features: list[float]) -> float:
        """Sum of the features, each divided by the running mean of its magnitude and weighted by the
        log-odds of its estimated reliability (scalar arithmetic)."""
        n_f = len(features)
        self._size_features(n_f)
        z = 0.0
        a = self._p.scale_alpha
        q0 = self._p.reliability_prior
        w0 = math.log(q0 / (1.0 - q0))
        n_s = self._p.scale_prior_n
        rel = []
        for k, f in enumerate(features):
            q = self._reliability(k)
            rel.append(q)
            if not math.isfinite(f):
                self._last_sign[k] = 0
                continue
            mag = abs(f)
            s = self._scale[k]
            if not math.isfinite(s):
                s = mag
            n_obs = self._n_obs[k] + 1.0
            self._n_obs[k] = n_obs
            if s > 0:
                z += f / s * math.log(q / (1.0 - q)) / w0 * (n_obs / (n_obs + n_s))
            self._scale[k] = (1 - a) * s + a * mag
            # consecutive steps alternate: count how often this feature's sign does
            sign = 1 if f > 0 else -1
            if self._last_sign[k] != 0:
                self._n_pairs[k] += 1.0
                self._n_alt[k] += 1.0 if sign != self._last_sign[k] else 0.0
            self._last_sign[k] = sign
        self.reliability_ = rel
        return z

    def update(
        self, features: Sequence[float] | np.ndarray, regular: bool = True, missed: bool = False
    ) -> LateralityTracker:
        """Add one step.

        Parameters
        ----------
        features : sequence of float, length K
            Evidence of this step, each positive for left stance (NaN = not available).
        regular : bool
            The previous step's time was close to the step period (alternation very likely kept).
        missed : bool
            The previous step lasted about two step periods: an initial contact between it and this step
            was probably missed, so this step is more likely on the same side.

        Returns
        -------
        self
        """
        p = self._p
        z = self._normalise([float(f) for f in features])
        llr = min(max(p.gain * z, -p.max_llr), p.max_llr)
        if self._logit_l is None:
            prior = 0.0
        else:
            pl = _sigmoid(self._logit_l)
            keep = p.p_keep_missed if missed else p.p_keep if regular else p.p_keep_irregular
            # the next step is on the other side with probability ``keep``
            p_next_l = keep * (1.0 - pl) + (1.0 - keep) * pl
            p_next_l = min(max(p_next_l, 1e-12), 1 - 1e-12)
            prior = math.log(p_next_l / (1.0 - p_next_l))
        post = prior + llr
        self._logit_l = post
        pl = _sigmoid(post)
        self.side_ = "L" if pl >= 0.5 else "R"
        self.confidence_ = max(pl, 1.0 - pl)
        return self

    def update_many(
        self,
        features: np.ndarray,
        regular: Sequence[bool],
        missed: Sequence[bool],
        restart: Sequence[bool],
    ) -> tuple[list[Side], list[float]]:
        """:meth:`update` for a run of steps, with :meth:`reset` before the steps flagged ``restart``.

        The same scalar arithmetic in the same order as the step-by-step calls (equal bit for bit, tested
        against them): the features' normalisation feature by feature over the run (:meth:`_terms`), then
        the forward recursion in one loop over plain floats; a short run is those calls.

        Parameters
        ----------
        features : ndarray, shape (N, K)
            Evidence of each step (see :meth:`update`).
        regular, missed, restart : sequence of bool, length N
            Per step: the arguments of :meth:`update`, and whether :meth:`reset` comes before it.

        Returns
        -------
        sides : list of {"L", "R"}
            ``side_`` after each step.
        confidences : list of float
            ``confidence_`` after each step.
        """
        feats = np.asarray(features, dtype=np.float64)
        n = feats.shape[0]
        sides: list[Side] = []
        conf: list[float] = []
        if n == 0:
            return sides, conf
        if n < _SHORT_RUN:
            # a few steps (a live stream's notification): the scalar steps cost less than the arrays' set-up
            for row, reg, mis, rs in zip(feats.tolist(), regular, missed, restart, strict=True):
                if rs:
                    self.reset()
                self.update(row, regular=reg, missed=mis)
                sides.append(cast(Side, self.side_))
                conf.append(self.confidence_)
            return sides, conf
        n_f = feats.shape[1]
        self._size_features(n_f)
        p = self._p
        rst = np.asarray(restart, dtype=bool)
        # ``z`` of each step: 0.0 plus the features' terms in feature order; a feature without a term adds
        # 0.0, which leaves the sum as it is (it is never -0.0)
        z = np.zeros(n)
        rel: list[float] = []
        for k in range(n_f):
            term, q_last = self._terms(k, feats[:, k], rst)
            z += term
            rel.append(q_last)
        llr = np.minimum(np.maximum(p.gain * z, -p.max_llr), p.max_llr)
        k_keep, k_irr, k_missed = p.p_keep, p.p_keep_irregular, p.p_keep_missed
        log, exp = math.log, math.exp
        logit = self._logit_l
        # P(left) of the current logit, carried from step to step (computed once per step)
        pl = 0.5 if logit is None else _sigmoid(logit)
        for llr_j, reg, mis, rs in zip(llr.tolist(), regular, missed, restart, strict=True):
            if rs:
                logit = None
            if logit is None:
                prior = 0.0
            else:
                keep = k_missed if mis else k_keep if reg else k_irr
                p_next_l = keep * (1.0 - pl) + (1.0 - keep) * pl
                p_next_l = min(max(p_next_l, 1e-12), 1 - 1e-12)
                prior = log(p_next_l / (1.0 - p_next_l))
            logit = prior + llr_j
            if logit >= 0:
                pl = 1.0 / (1.0 + exp(-logit))
            else:
                e = exp(logit)
                pl = e / (1.0 + e)
            sides.append("L" if pl >= 0.5 else "R")
            conf.append(max(pl, 1.0 - pl))
        self._logit_l = logit
        self.reliability_ = rel
        self.side_ = sides[-1]
        self.confidence_ = conf[-1]
        return sides, conf

    def _terms(self, k: int, f: np.ndarray, restart: np.ndarray) -> tuple[np.ndarray, float]:
        """Feature ``k``'s term of ``z`` at each step of a run (0.0 where it has none), as :meth:`_normalise`
        computes it step by step, and its reliability at the last step; advances its state over the run.

        The counts (observations, sign pairs, sign changes) are running sums of whole numbers, exact in any
        order; the reliability is element-wise; only the running magnitude is a recursion (a loop over the
        finite values). ``log`` is ``math.log``, as in the scalar form.
        """
        p = self._p
        n = f.shape[0]
        fin = np.isfinite(f)
        # signs (0 where the feature is missing) and the sign each step compares with (none after a reset)
        sign = np.where(fin, np.where(f > 0, 1, -1), 0)
        before = np.empty(n, dtype=sign.dtype)
        before[0] = self._last_sign[k]
        before[1:] = sign[:-1]
        before[restart] = 0
        pair = fin & (before != 0)
        changed = pair & (sign != before)
        # the counts as each step finds them, before its own update
        n_pairs = self._n_pairs[k] + (np.cumsum(pair) - pair)
        n_alt = self._n_alt[k] + (np.cumsum(changed) - changed)
        q0 = p.reliability_prior
        alt0 = q0 * q0 + (1 - q0) * (1 - q0)
        n0 = p.reliability_prior_n
        alt = (n_alt + alt0 * n0) / (n_pairs + n0)
        q = np.minimum(0.5 + 0.5 * np.sqrt(np.maximum(2.0 * alt - 1.0, 0.0)), p.max_reliability)
        n_obs = self._n_obs[k] + np.cumsum(fin)
        # the running magnitude each finite value is divided by (the first one its own magnitude)
        a = p.scale_alpha
        mag = np.abs(f[fin])
        scale = np.empty(mag.shape[0])
        s = self._scale[k]
        for j, m in enumerate(mag.tolist()):
            if not math.isfinite(s):
                s = m
            scale[j] = s
            s = (1 - a) * s + a * m
        use = scale > 0
        at = np.flatnonzero(fin)[use]
        qu = q[at]
        w = np.array([math.log(x) for x in (qu / (1.0 - qu)).tolist()])
        nu = n_obs[at]
        term = np.zeros(n)
        term[at] = f[at] / scale[use] * w / math.log(q0 / (1.0 - q0)) * (nu / (nu + p.scale_prior_n))
        self._scale[k] = s
        self._n_obs[k] = float(n_obs[-1])
        self._n_pairs[k] = float(n_pairs[-1] + pair[-1])
        self._n_alt[k] = float(n_alt[-1] + changed[-1])
        self._last_sign[k] = int(sign[-1])
        return term, float(q[-1])


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class ForwardMoment:
    """Per-sample braking/propulsion moment ``a · Δa_v`` (sensor frame), streaming.

    The trunk brakes while the vertical force rises and propels while it falls in running (spring-mass),
    and the opposite in walking (inverted pendulum), so the sum over whole strides of the low-passed
    specific force ``a`` times the increment of its vertical part ``Δa_v`` points backwards in running and
    forwards in walking, once projected on the horizontal plane (the mount calibration's forward rule,
    docs/dsp_orientation.md). The medio-lateral force alternates between steps and cancels over strides.
    Summed over the steps of :class:`StepForward`, it gives the forward direction after one or two strides,
    with gravity alone, long before the full mount calibration has decided.

    Parameters
    ----------
    rate_hz : float
        Sample rate, Hz.
    lowpass_hz : float
        Cut-off of the causal 2nd-order Butterworth low-pass on the specific force, Hz (the braking and
        propulsion pattern; foot-strike transients are left out).
    """

    def __init__(self, rate_hz: float, lowpass_hz: float = 6.0) -> None:
        self.rate_hz = rate_hz
        self.lowpass_hz = lowpass_hz
        self._lp = Lowpass(butter_lowpass_sos(2, min(lowpass_hz, 0.4 * float(rate_hz)), float(rate_hz)))
        self._lp_g = Lowpass(butter_lowpass_sos(2, _GRAVITY_HZ, float(rate_hz)))
        self.reset()

    def reset(self) -> None:
        """Forget the filter state (after a gap)."""
        self._zi: np.ndarray | None = None
        self._zi_g: np.ndarray | None = None
        self._last_h = np.zeros(3)
        self._last_v = 0.0

    def update(self, acc_mps2: np.ndarray, up: np.ndarray) -> np.ndarray:
        """Moment per sample, shape (N, 3), m²/s⁴, from specific force (N, 3) and the up direction (N, 3)."""
        n = acc_mps2.shape[0]
        if n == 0:
            return np.zeros((0, 3))
        first = self._zi is None
        if self._zi is None:
            self._zi = self._lp.rest_state(acc_mps2[0])
        # channel-major (3, N): each channel filtered and combined along contiguous memory
        lp, self._zi = self._lp(acc_mps2.T, self._zi)
        u = up.T
        v = lp[0] * u[0] + lp[1] * u[1] + lp[2] * u[2]
        if self._zi_g is None:
            self._zi_g = self._lp_g.rest_state(v[0])
        g, self._zi_g = self._lp_g(v, self._zi_g)
        vd = v - g  # the vertical force about its mean
        h = lp - u * v  # the horizontal force
        if first:
            self._last_h, self._last_v = h[:, 0].copy(), float(vd[0])
        # half the signed area swept by (h, vd) between consecutive samples: over a steady stride the same
        # sum as h times the change of vd, but with no term in the change of the bounce itself, which does
        # not cancel while gait starts (the first steps' bounce grows)
        out = np.empty((3, n))
        out[:, 0] = 0.5 * (self._last_h * vd[0] - h[:, 0] * self._last_v)
        out[:, 1:] = 0.5 * (h[:, :-1] * vd[1:] - h[:, 1:] * vd[:-1])
        self._last_h, self._last_v = h[:, -1].copy(), float(vd[-1])
        return out.T


class StepForward:
    """Forward direction (sensor frame) from the braking/propulsion moments of the steps so far.

    Attributes
    ----------
    n_steps_ : int
        Steps added since the last reset.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the steps (a new sensor or a new session; not needed after a gap)."""
        self._m = np.zeros(3)
        self.n_steps_ = 0

    def add(self, moment: np.ndarray, running: bool) -> StepForward:
        """Add one step's summed :class:`ForwardMoment` (3,), sensor frame; ``running``: a flight phase."""
        m = np.asarray(moment, dtype=np.float64)
        if np.all(np.isfinite(m)):
            self._m = self._m - m if running else self._m + m
            self.n_steps_ += 1
        return self

    def add_many(self, moments: np.ndarray, running: Sequence[bool]) -> StepForward:
        """:meth:`add` for each row of ``moments`` (N, 3) in order (the same additions: a running sum)."""
        m = np.asarray(moments, dtype=np.float64).reshape(-1, 3)
        ok = np.all(np.isfinite(m), axis=1)
        if not ok.any():
            return self
        run = np.asarray(running, dtype=bool)[ok]
        # ``x - m`` is ``x + (-m)`` exactly; add.accumulate adds row after row, like the calls would
        rows = np.concatenate([self._m[None, :], np.where(run[:, None], -m[ok], m[ok])])
        self._m = np.add.accumulate(rows, axis=0)[-1].copy()
        self.n_steps_ += int(ok.sum())
        return self

    def forward(self, up: np.ndarray) -> np.ndarray | None:
        """Unit forward vector in the sensor frame, horizontal for ``up`` (3,), or None before two steps."""
        if self.n_steps_ < 2:
            return None
        u = np.asarray(up, dtype=np.float64)
        f = self._m - u * float(u @ self._m)
        nf = float(np.linalg.norm(f))
        return f / nf if nf > 0 else None
