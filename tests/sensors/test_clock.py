"""Device clock -> session time: offset and drift recovered from one-sided jittered arrivals."""

from __future__ import annotations

import numpy as np
import pytest

from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.clock import ClockMap, SampleClock, SessionClock


def _arrivals(seconds: float, rate_hz: float, per_notif: int, offset_s: float, drift: float, seed: int):
    """Device times of notification ends and host receive times with connection-event and radio delays."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate_hz) // per_notif
    t_dev = 1000.0 + (np.arange(n) + 1) * per_notif / rate_hz  # device clock runs from 1000 s
    true_host = offset_s + (1 + drift) * (t_dev - 1000.0)
    wait = rng.uniform(0, 0.0225, n)  # held until the next connection event (link clock independent)
    delay = wait + rng.exponential(0.004, n) + np.where(rng.random(n) < 0.05, rng.uniform(0, 0.2, n), 0)
    return t_dev, true_host, true_host + delay


@pytest.mark.parametrize("drift", [-80e-6, 0.0, 120e-6])
def test_offset_and_drift_recovered_within_a_millisecond(drift: float) -> None:
    t_dev, true_host, t_host = _arrivals(120, 200, 8, 0.35, drift, seed=3)
    cm = ClockMap()
    for d, h in zip(t_dev, t_host, strict=True):
        cm.observe(d, h)
    assert cm.drift_ == pytest.approx(drift, abs=15e-6)
    err = cm.predict(t_dev[-2000:]) - true_host[-2000:]
    assert np.max(np.abs(err)) < 1e-3
    assert cm.n_reanchors_ == 0


def test_mapping_is_causal_monotonic_and_converges() -> None:
    t_dev, true_host, t_host = _arrivals(60, 200, 8, 0.2, 50e-6, seed=4)
    cm = ClockMap()
    out = []
    last_err = []
    for i, (d, h) in enumerate(zip(t_dev, t_host, strict=True)):
        samples = d - (np.arange(8)[::-1]) / 200
        cm.observe(d, h)
        t = cm.map(samples)
        out.append(t)
        if i > len(t_dev) // 2:
            last_err.append(t[-1] - true_host[i])
    allt = np.concatenate(out)
    assert np.all(np.diff(allt) > 0)
    assert np.median(np.abs(last_err)) < 0.5e-3
    assert np.max(np.abs(last_err)) < 1.5e-3


def test_reboot_of_the_device_clock_reanchors() -> None:
    cm = ClockMap()
    for k in range(200):
        cm.observe(50.0 + k * 0.04, 1.0 + k * 0.04 + 0.005)
    assert cm.observe(0.04, 1.0 + 200 * 0.04 + 0.5) is True
    assert cm.n_reanchors_ == 1
    assert float(cm.predict(0.04)) == pytest.approx(1.0 + 200 * 0.04 + 0.5)


def test_sample_clock_dejitters_host_times_and_finds_rate_error() -> None:
    rate = 100.0
    true_rate = rate * (1 + 300e-6)
    rng = np.random.default_rng(5)
    sc = SampleClock(rate)
    errs = []
    for k in range(3000):  # 3 samples per notification, 90 s
        t_true = (3 * k + np.arange(3)) / true_rate + 0.1
        t_recv = t_true[-1] + rng.uniform(0, 0.0075) + rng.exponential(0.003)
        t = sc.stamp(3, t_recv)
        if k > 1500:
            errs.append(t - t_true)
    e = np.concatenate(errs)
    assert np.max(np.abs(e)) < 1e-3
    assert sc.map_.drift_ == pytest.approx(-300e-6, abs=40e-6)


def test_sample_clock_reanchors_after_silent_loss() -> None:
    sc = SampleClock(50.0)
    for k in range(500):
        sc.stamp(1, k / 50 + 0.002)
    # 0.5 s of samples lost without a counter: arrivals are late by 0.5 s from now on
    for k in range(600, 800):
        t = sc.stamp(1, k / 50 + 0.002)
    assert float(t[0]) == pytest.approx(799 / 50 + 0.002, abs=1e-3)
    assert sc.map_.n_reanchors_ >= 1


def test_a_jump_of_the_host_clock_is_marked_as_a_gap() -> None:
    """Host-timed stream (no counter, no device clock): the batch whose times jump after silent loss comes
    with ``gap_before``, the ones before and after it do not."""
    sc = SessionClock(50.0)
    flags, times = [], []
    for k in [*range(500), *range(600, 800)]:  # 100 samples (2 s) lost unseen
        b = ImuBatch(t_s=np.zeros(1), acc_mps2=np.zeros((1, 3)), time_base="host")
        out = sc.to_session(b, k / 50 + 0.002)
        flags.append(out.gap_before)
        times.append(float(out.t_s[0]))
    jumps = np.flatnonzero(np.diff(times) > 0.5)
    assert jumps.size == 1 and np.flatnonzero(flags).tolist() == [int(jumps[0]) + 1]


def test_a_small_silent_loss_is_caught_up_and_marked() -> None:
    """Three notifications of 4 samples (0.12 s at 100 Hz) lost unseen, twice: once a whole bin of arrivals
    is late, session time jumps back onto the host clock and that batch is marked as after a gap."""
    sc = SessionClock(100.0)
    rng = np.random.default_rng(3)
    lost = {300, 301, 302, 900, 901, 902}  # notification numbers
    err, flagged = [], []
    for j in range(1500):
        if j in lost:
            continue
        b = ImuBatch(t_s=np.zeros(4), acc_mps2=np.zeros((4, 3)), time_base="host")
        t_true = (4 * j + 3) / 100.0  # the notification's last sample
        out = sc.to_session(b, t_true + 0.005 + 0.01 * rng.random())
        err.append(float(out.t_s[-1]) - t_true)
        if out.gap_before:
            flagged.append(j)
    assert len(flagged) == 2 and 303 <= flagged[0] < 303 + 50 and 903 <= flagged[1] < 903 + 50
    assert abs(err[-1]) < 0.02  # on the host clock again (0.12 s behind after each loss without the fix)


def test_session_clock_marks_batches_session_time() -> None:
    sc = SessionClock(200.0)
    b = ImuBatch(t_s=np.arange(4) / 200 + 7.0, acc_mps2=np.zeros((4, 3)), time_base="device")
    out = sc.to_session(b, 0.05, gap_before=True)
    assert out.time_base == "session" and out.gap_before
    assert out.t_s[-1] == pytest.approx(0.05)
    assert np.allclose(np.diff(out.t_s), 1 / 200)


@pytest.mark.parametrize("stall_s", [1.6, 4.0])
def test_a_stalled_link_does_not_move_device_clock_samples(stall_s: float) -> None:
    """The link stalls for ``stall_s`` and then delivers the queued notifications at once: their device times
    went on without a jump, so their session times stay on the device clock (no re-anchor, no jump forward
    and back), within the envelope's millisecond."""
    t_dev, true_host, t_host = _arrivals(60, 200, 8, 0.3, 40e-6, seed=6)
    stalled = (t_dev > 1030.0) & (t_dev < 1030.0 + stall_s)
    t_host = np.where(stalled, true_host[np.argmax(t_dev >= 1030.0 + stall_s)] + 0.01, t_host)
    cm = ClockMap()
    out = []
    for d, h in zip(t_dev, t_host, strict=True):
        cm.observe(d, h)
        out.append(cm.map(d - np.arange(8)[::-1] / 200))
    t = np.concatenate(out)
    truth = 0.3 + (1 + 40e-6) * (np.concatenate([d - np.arange(8)[::-1] / 200 for d in t_dev]) - 1000.0)
    assert cm.n_reanchors_ == 0
    late = t_dev > 1025.0  # the fit has converged by then
    assert np.max(np.abs(t - truth)[np.repeat(late, 8)]) < 1.5e-3
    assert np.all(np.diff(t) > 0)


def test_a_stalled_link_with_two_streams_observed_apart_does_not_reanchor() -> None:
    """Acc and gyro frames observed one by one (Polar): the gyro frame's last sample is a little older than
    the acc frame's before it, also in the queue a stalled link delivers at once."""
    cm = ClockMap()
    out = []
    for k in range(1, 1500):  # 60 s of 40 ms frame pairs; a 1.6 s stall from 30 s
        d = k * 0.04
        h = 0.003 + (31.6 + 0.01 if 30.0 < d < 31.6 else d)
        for dk in (d, d - 0.015):  # the acc frame, then the gyro frame ending 15 ms earlier
            cm.observe(dk, h)
            out.append(float(cm.predict(dk)) - (dk + 0.003))
    assert cm.n_reanchors_ == 0
    assert max(abs(e) for e in out) < 1e-3


def test_a_device_clock_that_jumps_forward_reanchors() -> None:
    """Device time leaps ahead of the host clock (a wrap the decoder missed): the fit moves to it."""
    cm = ClockMap()
    for k in range(200):
        cm.observe(50.0 + k * 0.04, 1.0 + k * 0.04 + 0.005)
    assert cm.observe(5000.0, 1.0 + 200 * 0.04 + 0.005) is True
    assert float(cm.predict(5000.0)) == pytest.approx(1.0 + 200 * 0.04 + 0.005)


def test_a_device_clock_that_falls_behind_reanchors_after_a_while() -> None:
    """A sample-counter clock that stopped with the sensor for 5 s: its device time goes on where it
    stopped, so every arrival afterwards is 5 s late. Unlike a stalled link's burst, that lateness
    lasts: the fit re-anchors within ``reanchor_s`` of host time and maps onto the host clock again."""
    cm = ClockMap()
    d, h = 0.0, 0.0
    for _ in range(500):  # 20 s, a notification every 40 ms
        d, h = d + 0.04, h + 0.04
        cm.observe(d, h + 0.003)
    h += 5.0  # the sensor (and its counter) stopped for 5 s
    reanchored_at = None
    for k in range(100):
        d, h = d + 0.04, h + 0.04
        if cm.observe(d, h + 0.003) and reanchored_at is None:
            reanchored_at = k
    assert cm.n_reanchors_ == 1 and reanchored_at is not None and reanchored_at * 0.04 <= cm.reanchor_s + 0.05
    assert float(cm.predict(d)) == pytest.approx(h + 0.003, abs=0.01)


def test_after_a_lost_link_a_late_device_clock_reanchors_at_once() -> None:
    """Across a reconnect nothing is a stalled link's queue: a device clock that stopped during the 5 s
    outage re-anchors with the first delivery after it (the batch the source flags as after a gap), not
    ``reanchor_s`` later."""
    sc = SessionClock(200.0)
    cm = sc.device
    d, h = 0.0, 0.0
    for _ in range(500):
        d, h = d + 0.04, h + 0.04
        cm.observe(d, h + 0.003)
    sc.link_lost()
    h += 5.0
    assert cm.observe(d + 0.04, h + 0.04 + 0.003) is True
    assert float(cm.predict(d + 0.04)) == pytest.approx(h + 0.043)


@pytest.mark.parametrize("hold_s", [0.3, 0.8])
def test_a_host_timed_queue_emptied_at_once_is_no_loss(hold_s: float) -> None:
    """A link that stalls holds a host-timed sensor's notifications and then delivers them together: the
    samples keep their places on the sample count (no re-anchor, no gap), where a loss (notifications that
    resume at the pace of the samples, late by what was lost) re-anchors at its second late arrival."""
    rate = 100.0
    rng = np.random.default_rng(1)
    k_held = range(600, 600 + int(round(hold_s * rate)))

    def run(hold: bool) -> tuple[list[int], np.ndarray, np.ndarray]:
        sc = SessionClock(rate)
        flagged, ks, times = [], [], []
        for k in range(1200):  # one sample per notification, 12 s
            if not hold and k in k_held:
                continue  # lost
            t_rx = k / rate + 0.004 + 0.004 * rng.random()
            if hold and k in k_held:  # delivered when the hold ends, within a millisecond
                t_rx = k_held[-1] / rate + 0.004 + 1e-5 * (k - k_held[0])
            out = sc.to_session(ImuBatch(t_s=np.zeros(1), acc_mps2=np.zeros((1, 3)), time_base="host"), t_rx)
            if out.gap_before:
                flagged.append(k)
            ks.append(k)
            times.append(float(out.t_s[0]))
        k_arr = np.array(ks)
        return flagged, k_arr, np.array(times) - k_arr / rate  # error against when each was measured

    flagged, k, err = run(hold=True)
    assert flagged == []
    assert np.max(np.abs(err - np.median(err))) < 0.006  # every sample in its place
    flagged, k, err = run(hold=False)
    assert flagged == [k_held[-1] + 2]  # the first late arrival waits for the next to tell
    after = k >= flagged[0]
    assert np.max(np.abs(err[after] - np.median(err))) < 0.006


def _host_timed(
    rate_error: float, per: int, ci: float, loss: float = 0.0, seconds: float = 60.0, seed: int = 0
) -> tuple[SampleClock, list[float], np.ndarray]:
    """A sensor without device clock or counter at 100 Hz nominal, sampling ``rate_error`` slower (> 0) or
    faster, ``per`` samples per notification, each delivered at the next ``ci`` connection event up to 4 ms
    late, a seeded fraction ``loss`` of them lost unseen. Returns (clock, host times of the notifications
    that re-anchored it, and per notification kept: its number and its last sample's session time minus
    when it was measured)."""
    rate = 100.0
    rng = np.random.default_rng(seed)
    n = int(seconds * rate / (1 + rate_error)) // per
    t_meas = (np.arange(n) * per + per - 1) * (1 + rate_error) / rate + 0.2
    t_host = np.maximum.accumulate(np.ceil(t_meas / ci) * ci + rng.uniform(0.0, 0.004, n))
    kept = rng.random(n) >= loss
    sc = SampleClock(rate)
    reanchored, err = [], []
    for j in np.flatnonzero(kept):
        t = sc.stamp(per, float(t_host[j]))
        if sc.reanchored_:
            reanchored.append(float(t_host[j]))
        err.append((j, float(t[-1]) - t_meas[j]))
    return sc, reanchored, np.array(err)


@pytest.mark.parametrize(
    ("rate_error", "per", "ci"),
    [(0.01, 3, 0.0075), (0.005, 1, 0.015), (0.002, 1, 0.0075), (-0.02, 1, 0.0075), (0.02, 1, 0.015)],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_host_timed_sensor_off_its_nominal_rate_is_no_loss(
    rate_error: float, per: int, ci: float, seed: int
) -> None:
    """Sample clocks of cheap sensors are off by up to a few percent. Without a counter, a slow one makes the
    arrivals fall behind the sample count just as lost notifications do; but gradually, where a loss
    steps. Once its rate is measured (the first few seconds), it is no gap: no re-anchor after 5 s, session
    time follows the samples to a few ms, and the rate error is found."""
    sc, reanchored, err = _host_timed(rate_error, per, ci, seed=seed)
    assert all(t < 5.0 for t in reanchored), reanchored
    late = err[err[:, 0] * per >= 1000, 1]  # from 10 s on
    assert np.max(np.abs(late - np.median(late))) < 0.008
    assert sc.map_.drift_ == pytest.approx(rate_error, abs=2e-4)


@pytest.mark.parametrize(("per", "ci"), [(3, 0.0075), (1, 0.015)])
@pytest.mark.parametrize("loss", [0.02, 0.1])
def test_silent_loss_is_not_taken_for_a_slow_sample_clock(per: int, ci: float, loss: float) -> None:
    """The other side: a sensor on its nominal rate losing notifications unseen. The losses are steps, left
    out of the rate measurement (and under heavy loss the measurement is not used at all), so the rate
    stays nominal and the losses are found: the clock re-anchors (at 2 % loss session time stays on the
    samples; at 10 % it falls behind them by up to a quarter of a second in a minute, as it did before the
    rate was measured)."""
    for seed in range(3):
        sc, reanchored, err = _host_timed(0.0, per, ci, loss=loss, seed=seed)
        assert abs(sc.map_.drift_) < 6e-4
        assert len(reanchored) >= 15
        if loss <= 0.02:
            assert np.median(np.abs(err[:, 1] - np.median(err[:, 1]))) < 0.03
