"""The 1 g level of the vertical force: an accelerometer whose scale is a few percent off reads its own 1 g."""

import sys
from pathlib import Path

import numpy as np
import pytest

from pelvimon.dsp.events import LEVEL_MAX_OFF, EventParams, GaitEventDetector
from pelvimon.firmware_protocols.batch import G_MPS2

sys.path.insert(0, str(Path(__file__).parent))
from _av_synth import gaussian_pulses  # noqa: E402

FS = 100.0


def _walk_then_stand(scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20 heel strikes every 0.55 s, the last four softer and softer (coming to a stop), then 10 s of
    standing with the small sway of quiet stance (about 0.02 g peak to peak at 2-4 Hz, as at the end of the
    real walks), read by an upright sensor whose scale is ``scale``. Returns t, the specific force (N, 3) in
    m/s² and the strike times."""
    t = np.arange(int(24 * FS)) / FS
    strikes = 2.0 + 0.55 * np.arange(20)
    # (the single-support trough, the loading peak, the trailing foot's unloading and push-off: a force whose
    # mean over a step is 1 g, as the body's vertical acceleration averages to zero)
    pulses = [(-0.2, -0.12, 0.07), (0.09, 0.4, 0.03), (0.17, -0.35, 0.03), (0.26, 0.2, 0.035)]
    soft = np.r_[np.ones(16), 0.6, 0.4, 0.25, 0.15]
    sway = 0.006 * np.sin(2 * np.pi * 2.3 * t) + 0.004 * np.sin(2 * np.pi * 3.7 * t + 1.0)
    steps = sum(k * gaussian_pulses(t, [c], pulses) for c, k in zip(strikes, soft, strict=True))
    av = (1.0 + steps + sway) * G_MPS2 * scale
    return t, np.column_stack([np.zeros_like(t), np.zeros_like(t), av]), strikes


def _steps(scale: float) -> tuple[list, np.ndarray]:
    t, acc, strikes = _walk_then_stand(scale)
    det = GaitEventDetector(FS)
    steps = []
    for a in range(0, t.size, 10):
        det.update(t[a : a + 10], acc[a : a + 10])
        steps += det.steps_
    det.flush()
    return steps + det.steps_, strikes


def test_no_steps_in_quiet_standing_on_a_sensor_that_reads_1_02_g() -> None:
    # with the level at 1 g, a sensor reading 1.02 g at rest had the sway's crests 0.02-0.03 g over 1 g, from
    # under the missed-step recovery's lowest level (0.02 g) to over it: a crest after about a step period
    # was taken for a step, again and again
    for scale in (1.0, 1.02, 1.03, 0.97):
        steps, strikes = _steps(scale)
        ics = np.array([s.t_ic_s for s in steps])
        assert not np.any(ics > strikes[-1] + 0.2), (scale, ics[ics > strikes[-1] + 0.2])
        # the walk itself: a step from every strike but the last (whose step has no next IC)
        assert ics.size == strikes.size - 1, (scale, ics)
        assert np.max(np.abs(ics - strikes[:-1])) < 0.06, scale


def test_vertical_force_reads_1_g_on_a_sensor_whose_scale_is_off() -> None:
    t = np.arange(int(60 * FS)) / FS
    up = np.array([0.3, -0.5, 0.81])
    up /= np.linalg.norm(up)
    for scale in (1.04, 0.96):
        det = GaitEventDetector(FS)
        av, up_est = det.vertical_up(np.outer(np.full(t.size, scale * G_MPS2), up))
        # from 1 g at the start (the raw reading) to the sensor's own 1 g within half a minute
        assert abs(av[0] / G_MPS2 - scale) < 1e-9
        assert abs(av[-1] / G_MPS2 - 1.0) < 1e-3
        np.testing.assert_allclose(up_est[-1], up, atol=1e-9)
    # a stream in other units (here g instead of m/s², or twice the force) is no scale error: the level stays
    # within LEVEL_MAX_OFF of 1 g
    for scale in (1.0 / G_MPS2, 2.0):
        av, _ = GaitEventDetector(FS).vertical_up(np.outer(np.full(t.size, scale * G_MPS2), up))
        lev = scale / (av[-1] / G_MPS2)
        assert abs(lev - 1.0) <= LEVEL_MAX_OFF + 1e-12, (scale, lev)
    for bad in (0.0, 0.5):
        with pytest.raises(ValueError, match="level_hz"):
            EventParams(level_hz=bad).validate(FS)
