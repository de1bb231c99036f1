"""The block forms of the laterality stage equal the readable step-by-step calls bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.dsp.laterality import LateralityTracker, StepForward


def _reference(tr: LateralityTracker, feats, regular, missed, restart):
    sides, conf = [], []
    for f, r, m, s in zip(feats, regular, missed, restart, strict=True):
        if s:
            tr.reset()
        tr.update(f, regular=r, missed=m)
        sides.append(tr.side_)
        conf.append(tr.confidence_)
    return sides, conf


def _in_chunks(tr: LateralityTracker, chunks, feats, regular, missed, restart):
    """``update_many`` over consecutive runs of the given lengths: (sides, confidences)."""
    sides, conf = [], []
    i = 0
    for c in chunks:
        s, cf = tr.update_many(feats[i : i + c], regular[i : i + c], missed[i : i + c], restart[i : i + c])
        sides += s
        conf += cf
        i += c
    return sides, conf


def _flags(rng, n: int, p_regular: float, p_missed: float, p_restart: float) -> list[list[bool]]:
    """Random ``regular``, ``missed`` and ``restart`` flags of ``n`` steps (drawn in that order)."""
    return [(rng.random(n) < q).tolist() for q in (p_regular, p_missed, p_restart)]


def _both(chunks, feats, flags):
    """Fresh trackers fed step by step and in runs of ``chunks``: (reference, fast, its output, fast's)."""
    ref, fast = LateralityTracker(), LateralityTracker()
    return ref, fast, _reference(ref, feats, *flags), _in_chunks(fast, chunks, feats, *flags)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(1, 60), min_size=1, max_size=6),
       st.integers(1, 3))
def test_update_many_equals_update(seed, chunks, n_feat):
    rng = np.random.default_rng(seed)
    n = sum(chunks)
    feats = rng.normal(0, 1, (n, n_feat)) * rng.choice([1e-3, 1.0, 50.0], (1, n_feat))
    feats[rng.random((n, n_feat)) < 0.15] = np.nan
    feats[rng.random((n, n_feat)) < 0.03] = 0.0
    ref, fast, (r_sides, r_conf), (f_sides, f_conf) = _both(chunks, feats, _flags(rng, n, 0.8, 0.1, 0.05))
    assert f_sides == r_sides
    assert [repr(x) for x in f_conf] == [repr(x) for x in r_conf]
    assert repr(fast.reliability_) == repr(ref.reliability_)
    assert (fast.side_, repr(fast.confidence_)) == (ref.side_, repr(ref.confidence_))
    # the carried state continues identically
    ref.update(feats[0], regular=True)
    fast.update(feats[0], regular=True)
    assert repr(fast.confidence_) == repr(ref.confidence_)


@pytest.mark.parametrize("chunks", [[1, 15, 16, 300], [300, 2, 40]])
def test_update_many_equals_update_in_short_and_long_runs(chunks):
    """Runs shorter than ``_SHORT_RUN`` are the scalar calls; longer ones the feature-by-feature form."""
    from pelvimon.dsp.laterality import _SHORT_RUN

    assert min(chunks) < _SHORT_RUN <= max(chunks)
    rng = np.random.default_rng(sum(chunks))
    n = sum(chunks)
    feats = rng.normal(0.2, 1, (n, 2)) * np.array([[0.01, 3.0]])
    feats[rng.random((n, 2)) < 0.1] = np.nan
    ref, fast, (r_sides, r_conf), (f_sides, f_conf) = _both(chunks, feats, _flags(rng, n, 0.9, 0.05, 0.01))
    assert f_sides == r_sides and [repr(x) for x in f_conf] == [repr(x) for x in r_conf]
    assert repr(fast.reliability_) == repr(ref.reliability_)
    assert (repr(fast._scale), repr(fast._n_obs), fast._n_alt, fast._n_pairs, fast._last_sign) == (
        repr(ref._scale), repr(ref._n_obs), ref._n_alt, ref._n_pairs, ref._last_sign)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 80))
def test_step_forward_add_many_equals_add(seed, n):
    rng = np.random.default_rng(seed)
    mom = rng.normal(0, 3, (n, 3))
    mom[rng.random(n) < 0.1, rng.integers(0, 3)] = np.nan
    running = (rng.random(n) < 0.5).tolist()
    ref, fast = StepForward(), StepForward()
    ref.add(np.array([0.3, -0.2, 0.1]), True)
    fast.add(np.array([0.3, -0.2, 0.1]), True)
    for m, r in zip(mom, running, strict=True):
        ref.add(m, r)
    fast.add_many(mom, running)
    assert fast.n_steps_ == ref.n_steps_
    assert fast._m.tobytes() == ref._m.tobytes()
    up = np.array([0.0, 0.1, 1.0]) / np.linalg.norm([0.0, 0.1, 1.0])
    a, b = fast.forward(up), ref.forward(up)
    assert (a is None and b is None) or a.tobytes() == b.tobytes()
