"""Per-step metrics from known signals."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.dsp.events import StepEvents
from pelvimon.dsp.records import Step
from pelvimon.dsp.steps import step_metrics, vertical_oscillation_cm
from pelvimon.firmware_protocols.batch import G_MPS2


def test_vertical_oscillation_of_a_sine():
    fs = 500.0
    f = 3.0  # one step of a 3 Hz vertical sine of amplitude 4 cm
    t = np.arange(int(fs / f)) / fs
    z_amp = 0.04
    acc = G_MPS2 - z_amp * (2 * np.pi * f) ** 2 * np.sin(2 * np.pi * f * t)
    vo = vertical_oscillation_cm(acc, fs)
    assert abs(vo - 8.0) < 0.1


def test_vertical_oscillation_over_exactly_one_stride():
    """A periodic bounce (two steps of 71 samples, a stride of 142 at 200 Hz) with a second harmonic: the
    stride window ends before the next IC's sample, so the removed means are those of one period and the
    figure is the true peak-to-peak within 0.3 % (with that sample in, it read 3 % high)."""
    fs, n = 200.0, 71
    w = 2 * np.pi * fs / n  # one bounce per step
    t = np.arange(2 * n + 1) / fs
    z = 0.04 * np.cos(w * t) + 0.008 * np.cos(2 * w * t + 1.0)
    acc = G_MPS2 - 0.04 * w**2 * np.cos(w * t) - 0.008 * (2 * w) ** 2 * np.cos(2 * w * t + 1.0)
    ang = np.zeros((n + 1, 3))
    step = step_metrics(_ev(n + 1, 40, fs), "L", 0.9, ang, acc[n:], fs, acc_v_before_mps2=acc[:n])
    true_cm = 100.0 * float(np.ptp(z[n:]))
    assert abs(step.vertical_oscillation_cm / true_cm - 1.0) < 0.003, (step.vertical_oscillation_cm, true_cm)


def _ev(n, contact_n, fs):
    return StepEvents(
        i_ic=0, i_next_ic=n - 1, i_fc=contact_n, i_end=n - 1, t_ic_s=0.0, t_next_ic_s=(n - 1) / fs,
        t_fc_s=contact_n / fs, running=True, bout_start=False,
    )


def test_cpd_sign_follows_stance_side_and_gap_gives_nan():
    fs = 200.0
    n, c = 71, 45
    obl = np.zeros(n)
    obl[:c] = 5.0 * np.sin(np.pi * np.arange(c) / (c - 1))  # obliquity rises: left side up = right drops
    ang = np.column_stack([np.zeros(n), obl, np.zeros(n)])
    av = np.full(n, G_MPS2)
    left = step_metrics(_ev(n, c, fs), "L", 0.9, ang, av, fs)
    right = step_metrics(_ev(n, c, fs), "R", 0.9, ang, av, fs)
    assert abs(left.cpd_deg - 5.0) < 0.05
    assert abs(right.cpd_deg) < 1e-9
    assert abs(left.obliquity_range_deg - 5.0) < 0.05
    assert abs(left.cadence_spm - 60.0 / (70 / fs)) < 1e-9
    gap = step_metrics(_ev(n, c, fs), "L", 0.5, ang, av, fs, gap=True)
    assert gap.gap and np.isnan(gap.cpd_deg) and np.isnan(gap.step_time_s)


def _random_steps(rng, fs: float, i: int, i_stop: int, n_range: tuple[int, int], c_min: int,
                  nan_fc_every: int = 0, random_sides: bool = False) -> tuple[list[StepEvents], list[str]]:
    """Consecutive step events from sample ``i`` until ``i_stop`` with random step lengths (``n_range``) and
    contact lengths (``c_min`` to 40 samples past the next IC: running and walking steps); every
    ``nan_fc_every``-th step from the first without a final contact; sides alternating (R first) or random."""
    evs, sides = [], []
    while i < i_stop:
        n = int(rng.integers(*n_range))
        c = int(rng.integers(c_min, n + 40))
        t_fc = (i + c) / fs if not nan_fc_every or len(evs) % nan_fc_every else float("nan")
        evs.append(StepEvents(i_ic=i, i_next_ic=i + n, i_fc=i + c, i_end=max(i + n, i + c), t_ic_s=i / fs,
                              t_next_ic_s=(i + n) / fs, t_fc_s=t_fc, running=c < n, bout_start=False))  # fmt: skip
        if random_sides:
            sides.append("L" if rng.random() < 0.5 else "R")
        else:
            sides.append("L" if len(sides) % 2 else "R")
        i += n
    return evs, sides


def test_batch_metrics_match_the_reference_implementation():
    from pelvimon.dsp.steps import step_metrics_batch

    rng = np.random.default_rng(4)
    fs = 200.0
    m = 2000
    ang = np.cumsum(rng.normal(0, 0.3, (m, 3)), axis=0)
    av = G_MPS2 + rng.normal(0, 3.0, m)
    evs, sides = _random_steps(rng, fs, 30, m - 300, (50, 140), 20)
    # the stride of each step starts at the IC before it, except for some (a bout's first step)
    prev = np.array([-1] + [e.i_ic for e in evs[:-1]])
    prev[rng.random(prev.size) < 0.2] = -1
    batch = step_metrics_batch(evs, sides, [0.9] * len(evs), ang, av, 0, fs, prev)
    for ev, sd, b, p in zip(evs, sides, batch, prev, strict=True):
        # records built without __init__ are the same as constructed ones (fields, repr, hash)
        built = Step(**b.to_dict())
        assert repr(b) == repr(built) and hash(b) == hash(built) and type(b) is Step
        before = av[p : ev.i_ic] if p >= 0 else None
        ref = step_metrics(ev, sd, 0.9, ang[ev.i_ic : ev.i_end + 1], av[ev.i_ic : ev.i_end + 1], fs,
                           acc_v_before_mps2=before)
        for k, v in ref.to_dict().items():
            w = b.to_dict()[k]
            if isinstance(v, float):
                assert np.isclose(v, w, rtol=1e-9, atol=1e-9, equal_nan=True), k
            else:
                assert v == w, k


def _exact_mean(w: np.ndarray) -> float:
    """Readable reference: the correctly rounded sum of the samples (``math.fsum``) over their count."""
    return math.fsum(w.tolist()) / w.size


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_window_means_equal_the_exact_mean_and_do_not_depend_on_the_other_windows(seed: int) -> None:
    from pelvimon.dsp.steps import window_means

    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 300))
    x = rng.normal(0, 1, (m, 2)) * 10.0 ** rng.integers(-3, 4)
    x[rng.integers(0, m), 1] = np.nan
    k = int(rng.integers(1, 25))
    start = rng.integers(0, m, k)
    stop = np.minimum(m, start + rng.integers(-2, 150, k))
    stop[0] = m  # one window ends with the array
    one = window_means(x[:, 0], start, stop)
    two = window_means(x, start, stop)
    for j in range(k):
        hi = max(stop[j], start[j] + 1)
        w = x[start[j] : hi]
        for c in range(2):
            ref = _exact_mean(w[:, c])
            got = two[j, c]
            # a sum of n terms in floating point is within n ulp of the sum of their magnitudes
            tol = w.shape[0] * np.finfo(float).eps * np.mean(np.abs(w[:, c]))
            assert (np.isnan(ref) and np.isnan(got)) or abs(got - ref) <= tol, (got, ref, tol)
        assert one[j].tobytes() == two[j, 0].tobytes()
        # the same bits from the window alone, cut from the samples at any offset (streaming equals batch)
        lo = start[j] - int(start[j] > 0)
        alone = window_means(x[lo : hi + 1], start[j : j + 1] - lo, stop[j : j + 1] - lo)
        assert alone.tobytes() == two[j : j + 1].tobytes()


def test_batch_metrics_do_not_depend_on_the_other_steps_of_the_call():
    from pelvimon.dsp.steps import step_metrics_batch

    rng = np.random.default_rng(9)
    fs = 200.0
    m = 4000
    ang = np.cumsum(rng.normal(0, 0.3, (m, 3)), axis=0)
    ang[:300] = np.nan  # orientation not valid yet
    av = G_MPS2 + rng.normal(0, 3.0, m)
    evs, sides = _random_steps(rng, fs, 10, m - 300, (2, 140), -3, nan_fc_every=7)
    whole = step_metrics_batch(evs, sides, [0.9] * len(evs), ang, av, 0, fs)
    cuts = [0, *sorted(rng.choice(np.arange(1, len(evs)), 6, replace=False).tolist()), len(evs)]
    parts = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        off = evs[a].i_ic - 5
        hi = max(e.i_end for e in evs[a:b]) + 1
        parts += step_metrics_batch(evs[a:b], sides[a:b], [0.9] * (b - a), ang[off:hi], av[off:hi], off, fs)
    assert [str(s) for s in parts] == [str(s) for s in whole]  # repr: every float exactly, NaN as nan
    assert any(np.isnan(s.cpd_deg) for s in whole) and any(np.isfinite(s.cpd_deg) for s in whole)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_window_extremes_equal_those_of_the_slices(seed: int, two_d: bool) -> None:
    from pelvimon.dsp.steps import _window_extremes

    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 200))
    x = rng.normal(0, 1, (3, m) if two_d else m)
    x.reshape(-1)[rng.random(x.size) < 0.02] = np.nan
    k = int(rng.integers(1, 20))
    start = rng.integers(0, m, k)
    stop = start + rng.integers(1, 80, k)  # may reach past the end: cut there
    stop[0] = m  # one window ends with the array
    hi, lo = _window_extremes(x, start, stop)
    for j in range(k):
        w = x[..., start[j] : stop[j]]
        assert np.array_equal(hi[..., j], np.max(w, axis=-1), equal_nan=True)
        assert np.array_equal(lo[..., j], np.min(w, axis=-1), equal_nan=True)


def test_batch_metrics_equal_the_reference_bit_for_bit_but_the_vertical_oscillation():
    """Times, ranges, CPD and impact are maxima, minima and differences: the batch gives the reference's
    figures exactly, NaN where an angle is (the vertical oscillation's means are summed in another order)."""
    from pelvimon.dsp.steps import step_columns, step_metrics_batch

    rng = np.random.default_rng(7)
    fs = 200.0
    m = 3000
    ang = np.cumsum(rng.normal(0, 0.3, (m, 3)), axis=0)
    ang[rng.random((m, 3)) < 0.002] = np.nan
    av = G_MPS2 + rng.normal(0, 3.0, m)
    evs, sides = _random_steps(rng, fs, 5, m - 300, (3, 140), 1, nan_fc_every=5, random_sides=True)
    batch = step_metrics_batch(evs, sides, [0.9] * len(evs), ang, av, 0, fs)
    assert [repr(s) for s in step_metrics_batch(step_columns(evs), sides, [0.9] * len(evs), ang, av, 0, fs)] == [
        repr(s) for s in batch
    ]
    n_nan = 0
    for ev, sd, b in zip(evs, sides, batch, strict=True):
        ref = step_metrics(ev, sd, 0.9, ang[ev.i_ic : ev.i_end + 1], av[ev.i_ic : ev.i_end + 1], fs).to_dict()
        got = b.to_dict()
        del ref["vertical_oscillation_cm"], got["vertical_oscillation_cm"]
        assert repr(got) == repr(ref)
        n_nan += math.isnan(ref["cpd_deg"]) and math.isfinite(ref["contact_time_s"])
    assert n_nan > 0
