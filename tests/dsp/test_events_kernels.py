"""The block forms of the event detector (onsets, peaks, gait flags, final contacts and times of all the
candidates of a chunk at once) equal its readable step-by-step forms bit for bit, for any chunking and any
block length; running contacts whose force rises in two stages (an impact transient above body weight, a
dip, then the steeper main rise) are timed at the start of the first stage, in both forms; and the
autocorrelation step period equals its whole-array form."""

from dataclasses import astuple
from functools import cache

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.dsp import events
from pelvimon.dsp._gait_eval import chunked_steps
from pelvimon.dsp.events import GaitEventDetector
from pelvimon.firmware_protocols.batch import G_MPS2
from pelvimon.sensors.simulator import SimParams, simulate

FS = 200.0
STEP_S = 0.34


class _Reference(GaitEventDetector):
    """Every decision through the readable per-step code."""

    def _precompute_onsets(self, cross, lo, af):
        self._pre_on = {}
        self._c_below = None  # the flight test by the window's minimum

    def _fill_running(self):
        todo = [e for e in self._queue if e[6] and e[7] is None]
        self._fill_running_reference(todo)

    def _has_pending(self):
        return any(not e[6] and e[7] is None for e in self._queue)


@cache
def _data(gait: str) -> tuple[float, np.ndarray, np.ndarray]:
    sim = simulate(SimParams(seconds=40, gait=gait, seed=3))
    return sim.params.rate_hz, sim.batch.t_s, sim.batch.acc_mps2


def _run(cls, gait: str, cuts: list[int]) -> tuple[list[str], list[str]]:
    fs, t, acc = _data(gait)
    det = cls(fs)
    steps, states = [], []
    edges = [0, *sorted(c for c in cuts if 0 < c < t.size), t.size]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        det.update(t[a:b], acc[a:b])
        steps += det.steps_
        states += det.states_
    det.flush()
    steps += det.steps_
    states += det.states_
    return [_bits(s) for s in steps], [_bits(s) for s in states]


def _bits(rec) -> tuple:
    """The fields of a record, floats as their exact hex form (np.float64 and float alike)."""
    return tuple(float(v).hex() if isinstance(v, float) else v for v in astuple(rec))


def test_whole_runs_equal_reference():
    for gait in ("run", "walk"):
        fast = _run(GaitEventDetector, gait, [])
        ref = _run(_Reference, gait, [])
        assert len(fast[0]) > 40
        assert fast == ref


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["run", "walk"]), st.lists(st.integers(1, 8000), max_size=12))
def test_chunked_equal_reference(gait, cuts):
    assert _run(GaitEventDetector, gait, cuts) == _run(_Reference, gait, [])

def _pulse(t: np.ndarray, t0: float, dur: float, amp: float, power: int = 2) -> np.ndarray:
    """``amp * sin^power`` over ``[t0, t0 + dur]``, zero elsewhere (a half sine starts at its steepest;
    its square starts flat and is steepest a quarter in)."""
    x = (t - t0) / dur
    return np.where((x >= 0) & (x <= 1), amp * np.sin(np.pi * x) ** power, 0.0)


def _running(impact: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """t, 3-axis specific force (sensor = pelvis, z up) and the contact starts: 2 s standing, then steps
    every 0.34 s with 0 g flights. A contact is an impact pulse (1.3 g peak 30 ms in, 68 g/s at most) and
    the main pulse from 30 ms on (5 g, 83 g/s at most), or a half-sine pulse of 2.5 g from the contact start."""
    t = np.arange(int(14 * FS)) / FS
    starts = 2.0 + STEP_S * np.arange(int(11.5 / STEP_S))
    av = np.where(t < starts[0] - 0.12, 1.0, 0.0)
    for tc in starts:
        if impact:
            av = av + _pulse(t, tc, 0.06, 1.3) + _pulse(t, tc + 0.03, 0.19, 5.0)
        else:
            av = av + _pulse(t, tc, 0.22, 2.5, power=1)
    acc = np.zeros((t.size, 3))
    acc[:, 2] = av * G_MPS2
    return t, acc, starts


def _steps(cls, impact: bool, chunk: int) -> list:
    t, acc, _ = _running(impact)
    return chunked_steps(cls(FS), t, acc, chunk)


def _ic_errors(impact: bool) -> np.ndarray:
    _, _, starts = _running(impact)
    ics = np.array([s.t_ic_s for s in _steps(GaitEventDetector, impact, 10) if s.running])
    assert ics.size >= 25
    return np.array([ic - starts[np.argmin(np.abs(starts - ic))] for ic in ics])


def test_two_stage_rise_is_timed_at_its_first_stage():
    err = _ic_errors(impact=True)
    # the tangent of the main rise alone would land about 45 ms late
    assert np.max(np.abs(err)) <= 0.010


def test_one_stage_rise_is_unchanged():
    assert np.max(np.abs(_ic_errors(impact=False))) <= 0.010


def test_block_form_equals_readable_form_on_two_stage_rises():
    for chunk in (10, 333, 5000):
        fast = [_bits(s) for s in _steps(GaitEventDetector, True, chunk)]
        assert len(fast) >= 25
        assert fast == [_bits(s) for s in _steps(_Reference, True, 10)]


def _autocorr_period_reference(det: GaitEventDetector, i_end: int) -> float:
    """The step period from the autocorrelation, written with whole-array numpy (the readable form of
    :meth:`GaitEventDetector._autocorr_period`)."""
    p, fs = det._p, det._fs
    n_w = int(round(p.ac_window_s * fs))
    if i_end - n_w < det._ring.first:
        return float("nan")
    x = det._af(i_end - n_w, i_end)
    x = x - x.mean()
    nfft = 1 << int(np.ceil(np.log2(2 * n_w)))
    spec = np.fft.rfft(x, nfft)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2, nfft)[:n_w]
    if ac[0] <= 0:
        return float("nan")
    ac = ac / ac[0]
    lo = max(1, int(p.min_step_s * fs))
    hi = min(n_w - 2, int(2.2 * p.max_step_s * fs))
    seg = ac[lo - 1 : hi + 2]
    k = np.flatnonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:]) & (seg[1:-1] > 0.1)) + 1
    if k.size == 0:
        return float("nan")
    vals = seg[k]
    top = int(np.argmax(vals))
    first = k[vals >= p.ac_step_ratio * vals[top]][0]
    if first == k[top]:
        half = (lo - 1 + k[top]) / 2.0
        near = np.flatnonzero(np.abs(lo - 1 + k - half) <= 0.2 * half)
        if near.size:
            first = k[near[np.argmax(vals[near])]]
    lag = lo - 1 + int(first)
    return float("nan") if lag > p.max_step_s * fs else lag / fs


def _autocorr_pairs(sim_params: SimParams) -> list[tuple[float, float]]:
    """(detector, reference) step periods at every refresh of a run over simulated data, and 37 and 101
    samples before it."""
    sim = simulate(sim_params)
    pairs: list[tuple[float, float]] = []

    class Logged(GaitEventDetector):
        def _autocorr_period(self, i_end: int) -> float:
            for i in (i_end, i_end - 37, i_end - 101):
                pairs.append((super()._autocorr_period(i), _autocorr_period_reference(self, i)))
            return super()._autocorr_period(i_end)

    det = Logged(sim.params.rate_hz)
    det.update(sim.batch.t_s, sim.batch.acc_mps2)
    det.flush()
    return pairs


def test_autocorr_period_equals_reference():
    # running, walking, and a limp (whose stride peak is often the highest: the half-lag rule)
    for sim_params in (SimParams(seconds=40, gait="run", seed=3), SimParams(seconds=40, gait="walk", seed=3),
                       SimParams(seconds=60, gait="walk", step_time_asymmetry_pct=8.0, seed=11)):
        pairs = _autocorr_pairs(sim_params)
        assert sum(np.isfinite(a) for a, _ in pairs) >= 30
        assert [float(a).hex() for a, _ in pairs] == [float(b).hex() for _, b in pairs]


def test_autocorr_padding_leaves_the_lags_read_unwrapped():
    # the transform is padded to a fast length, mostly shorter than twice the window: every lag read (up to
    # one past the longest plausible) must still be the linear autocorrelation, at any rate
    rng = np.random.default_rng(5)
    for fs in (20.0, 52.0, 100.0, 200.00895700963017, 400.0, 1000.0):
        det = GaitEventDetector(fs)
        n_w, n_fft, hi = det._n_ac, det._n_ac_fft, det._ac_lags[1]
        x = rng.standard_normal(n_w)
        spec = np.fft.rfft(x, n_fft)
        ac = np.fft.irfft(spec.real**2 + spec.imag**2, n_fft)[: hi + 2]
        linear = np.correlate(x, x, mode="full")[n_w - 1 : n_w + hi + 1]
        np.testing.assert_allclose(ac, linear, rtol=0, atol=1e-9 * linear[0])


def test_block_length_changes_nothing(monkeypatch):
    # one long chunk: in one block (the default at least 8192 samples), and in blocks of 600 samples
    default = _run(GaitEventDetector, "run", []), _run(GaitEventDetector, "walk", [])
    assert _data("run")[1].size <= events.BLOCK_MIN_N
    monkeypatch.setattr(events, "BLOCK_MIN_N", 600)
    monkeypatch.setattr(events, "BLOCK_S", 3.0)
    assert GaitEventDetector(FS).block_n == 600
    assert (_run(GaitEventDetector, "run", []), _run(GaitEventDetector, "walk", [])) == default


class _GatesChecked(GaitEventDetector):
    """Checks after every accepted contact and every bout end that the refractory and recovery gates the
    scan reads equal those the current periods give (they are cached, refreshed where the periods change)."""

    checked = 0

    def _check_gates(self) -> None:
        cached = (self._refractory_n, self._recovery_n)
        self._set_gates()
        assert (self._refractory_n, self._recovery_n) == cached
        _GatesChecked.checked += 1

    def _accept_ic(self, *a, **k):
        super()._accept_ic(*a, **k)
        self._check_gates()

    def _end_bout(self):
        super()._end_bout()
        self._check_gates()


def test_cached_gates_follow_the_periods():
    for gait in ("run", "walk"):
        assert _run(_GatesChecked, gait, [777, 3001]) == _run(GaitEventDetector, gait, [])
    assert _GatesChecked.checked > 150


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=400),
    st.integers(1, 320),
)
def test_trailing_max_equals_scipy_maximum_filter(x, w):
    from scipy import ndimage

    a = np.array(x)
    want = ndimage.maximum_filter1d(a, w, origin=(w - 1) // 2, mode="nearest")
    np.testing.assert_array_equal(events.trailing_max(a, w), want)


def test_trailing_max_of_a_long_signal_with_the_envelope_window():
    from scipy import ndimage

    a = np.random.default_rng(5).normal(size=20_011)
    for w in (2, 299, 300, 301):
        want = ndimage.maximum_filter1d(a, w, origin=(w - 1) // 2, mode="nearest")
        np.testing.assert_array_equal(events.trailing_max(a, w), want)


def test_fast_len_equals_scipy_next_fast_len():
    from scipy import fft

    assert [events._fast_len(n) for n in range(1, 3000)] == [fft.next_fast_len(n, real=True) for n in range(1, 3000)]


def _settled_by_hand(x: list[int], h: int, complete: bool) -> int | None:
    """The walking final contact's rule read literally: walk the window's records (values above all before
    them); the first one above 0 with no greater value in the next ``h`` samples is the answer once those
    samples are seen, whatever comes later; without one, the window's first maximum once it is whole."""
    for r, v in enumerate(x):
        if any(u >= v for u in x[:r]) or v <= 0 or any(u > v for u in x[r + 1 : r + h + 1]):
            continue
        return r if (r + h < len(x) or complete) else None
    return int(np.argmax(x)) if complete else None


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=40), st.integers(1, 12), st.booleans())
def test_settled_argmax_equals_the_rule_by_hand(x, h, complete):
    assert events.settled_argmax(np.array(x, dtype=float), h, complete) == _settled_by_hand(x, h, complete)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=40), st.integers(1, 12))
def test_settled_argmax_of_a_growing_window_never_changes_its_mind(x, h):
    """Fed the window a sample at a time (as the stream sees it), the first decision is the final one, and
    is made by the time the whole window is seen."""
    a = np.array(x, dtype=float)
    seen = [events.settled_argmax(a[:n], h, False) for n in range(1, a.size)]
    final = events.settled_argmax(a, h, True)
    assert final is not None
    assert all(k is None or k == final for k in seen)


def test_settled_argmax_without_settling_or_in_a_short_window_is_argmax():
    rng = np.random.default_rng(2)
    for _ in range(200):
        a = rng.normal(size=int(rng.integers(1, 30)))
        assert events.settled_argmax(a, 0, True) == int(np.argmax(a))
        assert events.settled_argmax(a, a.size - 1, True) == int(np.argmax(a))
        assert events.settled_argmax(a, 0, False) is None
    # an early rise that nothing exceeds for h samples wins over a steeper one after them
    a = np.array([-1.0, 0.5, 0.2, 0.1, 0.0, 0.0, 2.0])
    assert events.settled_argmax(a, 4, True) == 1
    assert events.settled_argmax(a, 5, True) == 6
    assert events.settled_argmax(a[:5], 4, False) is None and events.settled_argmax(a[:6], 4, False) == 1
