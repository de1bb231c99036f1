"""Laterality: the forward filter over alternating steps recovers the sides from weak, noisy evidence."""

import numpy as np

from pelvimon.dsp.laterality import LateralityTracker


def _sides(n, first="L"):
    other = {"L": "R", "R": "L"}
    out = [first]
    for _ in range(n - 1):
        out.append(other[out[-1]])
    return out


def test_alternation_beats_single_step_evidence():
    rng = np.random.default_rng(1)
    truth = _sides(400)
    sign = np.array([1.0 if s == "L" else -1.0 for s in truth])
    # single-step evidence right only ~75 % of the time
    feat = sign * 0.7 + rng.normal(0, 1.0, sign.size)
    single = np.mean(np.sign(feat) == sign)
    assert single < 0.85
    tr = LateralityTracker()
    got = []
    for f in feat:
        tr.update(np.array([f, np.nan]))
        got.append(tr.side_)
    acc = np.mean([g == t for g, t in zip(got[20:], truth[20:], strict=False)])
    assert acc >= 0.99


def test_reset_restarts_at_even_odds_and_confidence_grows():
    tr = LateralityTracker()
    tr.update(np.array([0.5, 0.5]))
    c1 = tr.confidence_
    for k in range(10):
        tr.update(np.array([(-1) ** (k + 1) * 0.5, (-1) ** (k + 1) * 0.5]))
    assert tr.confidence_ > c1
    tr.reset()
    tr.update(np.array([np.nan, np.nan]))
    assert tr.confidence_ == 0.5


def test_missing_evidence_keeps_alternating():
    tr = LateralityTracker()
    for k in range(10):
        tr.update(np.array([1.0 if k % 2 == 0 else -1.0]))
    last = tr.side_
    tr.update(np.array([np.nan]))
    assert tr.side_ != last
