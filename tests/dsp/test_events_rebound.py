"""Walking initial contact: a heel strike whose loading rebounds (a_v peaks, falls back under 1 g and rises
again, more steeply, within the rise window) is timed on its own rise, not on the rebound's."""

import sys
from pathlib import Path

import numpy as np

from pelvimon.dsp.events import GaitEventDetector
from pelvimon.firmware_protocols.batch import G_MPS2

sys.path.insert(0, str(Path(__file__).parent))
from _av_synth import gaussian_pulses  # noqa: E402

FS = 100.0


def _walk(rebound: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertical specific force of 21 heel strikes every 0.55 s (single-support trough to 0.8 g). Each heel
    strike loads to 1.8 g 40 ms after it; with ``rebound``, every other one peaks at 1.6 g, falls to under
    0.7 g 85 ms after the strike and rises again, more steeply, to 1.8 g at 125 ms. Returns t, a_v and the
    strike times (the odd ones rebound)."""
    t = np.arange(int(13 * FS)) / FS
    strikes = 1.0 + 0.55 * np.arange(21)
    plain = [(-0.2, -0.2, 0.07), (0.04, 0.8, 0.025)]
    bouncing = [(-0.2, -0.2, 0.07), (0.04, 0.6, 0.02), (0.085, -0.35, 0.015), (0.125, 0.8, 0.015)]
    odd = strikes[1::2]
    av = 1.0 + gaussian_pulses(t, strikes[0::2], plain) + gaussian_pulses(t, odd, bouncing if rebound else plain)
    return t, av * G_MPS2, strikes


def _steps(rebound: bool, cuts: list[int]) -> list:
    """The detector's steps of :func:`_walk`, fed in the chunks between ``cuts``."""
    t, av, _ = _walk(rebound)
    det = GaitEventDetector(FS)
    steps = []
    for a, b in zip([0, *cuts], [*cuts, t.size], strict=True):
        det.update(t[a:b], acc_v_mps2=av[a:b])
        steps += det.steps_
    det.flush()
    return steps + det.steps_


def _ic_errors(rebound: bool) -> np.ndarray:
    """Each strike's detected IC minus the strike time, fed in 10-sample chunks (NaN: no IC within 0.2 s)."""
    t, _, strikes = _walk(rebound)
    steps = _steps(rebound, list(range(10, t.size, 10)))
    found = np.unique(np.round([s.t_ic_s for s in steps] + [s.t_next_ic_s for s in steps], 9))
    err = np.array([found[np.argmin(np.abs(found - ts))] - ts for ts in strikes])
    err[np.abs(err) > 0.2] = np.nan
    return err


def test_a_rebounding_heel_strike_is_timed_on_its_own_rise():
    plain = _ic_errors(rebound=False)
    mixed = _ic_errors(rebound=True)
    assert not np.isnan(plain).any() and not np.isnan(mixed).any()  # every strike is found
    # the tangent onset of a strike without rebound (the same in both walks)
    np.testing.assert_allclose(mixed[0::2], plain[0::2], atol=1e-9)
    # the rebounding strikes are timed on the rise of their first peak, within 20 ms of the others (their
    # rebound's steeper rise, after the fall under 1 g, lands about 100 ms late)
    assert np.all(np.abs(mixed[1::2] - np.median(plain)) <= 0.020)


def test_rebound_rule_gives_the_same_steps_whatever_the_chunking():
    n = _walk(True)[0].size
    whole = _steps(True, [])
    assert len(whole) >= 19
    rng = np.random.default_rng(3)
    for cuts in (list(range(1, n)), sorted(rng.choice(np.arange(1, n), 150, replace=False).tolist())):
        assert _steps(True, cuts) == whole
