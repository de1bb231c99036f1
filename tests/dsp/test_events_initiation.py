"""Gait initiation: the optional first-rise rule drops a weight shift that looks like a small heel strike; and
the step period of a limping walk is the step, not the stride."""

import sys
from pathlib import Path

import numpy as np

from pelvimon.dsp.events import EventParams, GaitEventDetector
from pelvimon.firmware_protocols.batch import G_MPS2

sys.path.insert(0, str(Path(__file__).parent))
from _av_synth import gaussian_pulses  # noqa: E402

FS = 100.0


def _walk_with_weight_shift() -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Vertical specific force: 2 s standing, a weight shift (dip to 0.93 g, bump to 1.12 g), then heel
    strikes every 0.55 s (single-support trough to 0.8 g, steep rise to 1.5 g). Returns t, a_v, the time of
    the weight shift and the times of the heel-strike rises."""
    t = np.arange(int(12 * FS)) / FS
    t_shift = 2.0
    strikes = 2.45 + 0.55 * np.arange(17)
    av = (1.0 + gaussian_pulses(t, np.array([t_shift]), [(-0.15, -0.07, 0.05), (0.0, 0.12, 0.04)])
          + gaussian_pulses(t, strikes, [(-0.2, -0.2, 0.07), (0.04, 0.5, 0.025)]))
    return t, av * G_MPS2, t_shift, strikes


def _ics(params: EventParams) -> np.ndarray:
    t, av, _, _ = _walk_with_weight_shift()
    det = GaitEventDetector(FS, params)
    steps = []
    for a in range(0, t.size, 10):
        det.update(t[a : a + 10], acc_v_mps2=av[a : a + 10])
        steps += det.steps_
    det.flush()
    steps += det.steps_
    return np.array([s.t_ic_s for s in steps])


def test_weight_shift_is_a_step_by_default_and_dropped_with_the_first_rise_rule():
    _, _, t_shift, strikes = _walk_with_weight_shift()
    plain = _ics(EventParams())
    rule = _ics(EventParams(first_peak_frac=0.4))
    # by default the weight shift starts the bout (as the rise of a soft heel strike would)
    assert np.min(np.abs(plain - t_shift)) < 0.2
    # with the rule the bout starts at the first heel strike, and every heel strike is still found
    assert np.min(np.abs(rule - t_shift)) > 0.3
    assert abs(rule[0] - strikes[0]) < 0.06
    assert rule.size == plain.size - 1


def _limp_signal(weak: float, fs: float = 200.0, seconds: float = 60.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Vertical specific force of a limp (t, acc (n, 3) m/s², mean step s): steps of 0.586 and 0.504 s, each a
    loading pulse after its IC and a single-support trough, those of the shorter steps ``weak`` times as deep."""
    t = np.arange(int(seconds * fs)) / fs
    steps = np.tile([0.586, 0.504], 60)
    ics = 3.0 + np.r_[0.0, np.cumsum(steps)]
    av = np.ones(t.size)
    for k, ic in enumerate(ics[ics < seconds - 1.0]):
        scale = 1.0 if k % 2 == 0 else weak
        u = (t - ic) / 0.15
        on = (u >= 0) & (u < 1)
        av[on] += 0.6 * scale * np.sin(np.pi * u[on]) ** 2
        u = (t - ic - 0.15) / (steps[k] - 0.15)
        on = (u >= 0) & (u < 1)
        av[on] -= 0.25 * scale * np.sin(np.pi * u[on]) ** 2
    acc = np.zeros((t.size, 3))
    acc[:, 2] = av * G_MPS2
    return t, acc, float(steps.mean())


def test_step_period_of_a_limp_is_the_step_not_the_stride():
    """A limp whose shorter steps load the pelvis less (here 40 % of the longer steps' pulses) lowers the
    autocorrelation's step peak under 60 % of the stride peak; the stride would make the refractory time
    skip every other step."""
    t, acc, step_s = _limp_signal(0.4)
    periods: list[float] = []

    class Logged(GaitEventDetector):
        def _autocorr_period(self, i_end: int) -> float:
            r = super()._autocorr_period(i_end)
            periods.append(r)
            return r

    det = Logged(200.0)
    det.update(t, acc)
    det.flush()
    p = np.array([x for x in periods if np.isfinite(x)])
    assert p.size >= 20
    # without the half-lag rule, 25 of 26 estimates here were the stride (1.09 s)
    assert np.all(np.abs(p - step_s) <= 0.25 * step_s)


def test_a_bouts_second_ic_reads_the_look_ahead_its_scan_waited_for():
    """The bout's second IC closes its first step, which switches the gait state from standing to walking
    and with it the look-ahead (0.05 to 0.1 s). The IC's peak (the missed-step recovery's level) used to be
    read over the walking look-ahead, which the scan had not waited for: fed sample by sample, only 0.05 s
    of it was held, so a slow, irregular walk gave another recovery level, another IC and another step
    than fed whole (in 21 of 86 simulated walks). Now both read the look-ahead the scan waited for."""
    from pelvimon.dsp._gait_eval import chunked_steps
    from pelvimon.sensors.simulator import SimParams, simulate

    sim = simulate(SimParams(seconds=40, gait="walk", cadence_spm=60, step_time_cv=0.04, seed=0,
                             mount_euler_deg=(0.0, -20.0, 30.0)))
    t, acc = sim.batch.t_s, sim.batch.acc_mps2
    fs = sim.params.rate_hz

    whole, one = (chunked_steps(GaitEventDetector(fs), t, acc, n) for n in (t.size, 1))
    assert len(whole) >= 25 and [repr(s) for s in one] == [repr(s) for s in whole]
