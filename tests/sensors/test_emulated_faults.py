"""Fault injection end to end through BleSource: a sensor that stops sending (stall -> detected ->
reconnect -> the stream resumes after a counted gap) and delayed bursts (nothing lost, session times
still right because they come from the device clock, not from arrival times)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.source import RawNotification, SourceStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _emulated_run import run_emulated  # noqa: E402


def test_stalled_sensor_is_detected_reconnected_and_resumes_after_a_counted_gap() -> None:
    src, sensor, events = asyncio.run(run_emulated("emulated:movesense?speed=20&stall_at=3&seed=1", 10.0))
    statuses = [e for e in events if isinstance(e, SourceStatus)]
    kinds = [e.kind for e in statuses]
    i_disc = kinds.index("disconnected")
    disc = statuses[i_disc]
    assert "no data" in disc.message
    # detected within the stall timeout (3 s) plus a poll, not before
    assert 3.0 + src.stall_timeout_s - 0.2 < disc.t_s < 3.0 + src.stall_timeout_s + 0.5
    assert kinds[i_disc + 1] == "reconnecting" and kinds.count("connected") == 2
    assert sensor.n_withheld > 0  # the stalled sensor really kept its notifications
    # the stream resumed: data after the reconnect, the first batch flagged, one gap with its exact count
    i_conn = len(kinds) - 1 - kinds[::-1].index("connected")
    t_conn = statuses[i_conn].t_s
    after = [e for e in events if isinstance(e, ImuBatch) and e.t_s[0] > t_conn]
    assert sum(len(b) for b in after) > 0.8 * 104 * (10.0 - t_conn - 0.5)
    gaps = [s for s in statuses if s.kind == "gap"]
    assert len(gaps) == 1 and after[0].gap_before
    rate = src.info.rate_hz
    stream = src.stream
    k0, k1 = (int(round((t - sensor.device_offset_s) * rate)) for t in (stream.first_device_s, stream.last_device_s))
    n = sum(len(e) for e in events if isinstance(e, ImuBatch))
    assert gaps[0].details["n_lost"] == sensor.missing(k0, k1)
    assert n + gaps[0].details["n_lost"] == k1 - k0 + 1
    # the hole in session time is the lost samples' duration
    batches = [e for e in events if isinstance(e, ImuBatch)]
    t = np.concatenate([b.t_s for b in batches])
    assert np.all(np.diff(t) > 0)
    hole = float(np.max(np.diff(t)))
    assert hole == pytest.approx((gaps[0].details["n_lost"] + 1) / rate, abs=0.02)


@pytest.mark.parametrize(("every_s", "burst_s"), [(1.5, 0.6), (4.0, 1.6)])
def test_delayed_bursts_lose_nothing_and_keep_session_times_right(every_s: float, burst_s: float) -> None:
    """Bursts of 0.6 s, and of 1.6 s: longer than the clock's re-anchor distance (1 s), which a late
    delivery of a device clock must not trigger."""
    spec = f"emulated:movesense?speed=20&burst_every={every_s}&burst_s={burst_s}&seed=2"
    src, sensor, events = asyncio.run(run_emulated(spec, 9.0))
    kinds = [e.kind for e in events if isinstance(e, SourceStatus)]
    assert kinds == ["connecting", "connected", "stopped"]  # no gap, no stall, no reconnect
    raws = [e for e in events if isinstance(e, RawNotification)]
    t_rx = np.array([r.t_host_s for r in raws])
    # the bursts happened: burst_s without a notification, then many at once
    assert np.max(np.diff(t_rx)) > burst_s - 0.1
    batches = [e for e in events if isinstance(e, ImuBatch)]
    t = np.concatenate([b.t_s for b in batches])
    rate = src.info.rate_hz
    n = len(t)
    stream = src.stream
    k0, k1 = (int(round((x - sensor.device_offset_s) * rate)) for x in (stream.first_device_s, stream.last_device_s))
    assert n == k1 - k0 + 1 and sensor.missing(k0, k1) == 0  # every sample, none lost
    # session time of each sample vs when the sensor measured it (emulation time since the source opened)
    k = k0 + np.arange(n)
    t_true = k / rate / (1.0 + sensor.drift) - src._t0
    err = t - t_true
    # after the first burst, held from the start, has slewed back (at half speed) from the late anchor of
    # its first delivery onto the envelope taught by the rest. Emulation runs 20 times faster than real
    # time, so a quarter of a millisecond of this host's scheduling delays a delivery by 5 ms of session
    # time, and the envelope settles within a few ms; times taken from arrivals (or a clock re-anchored by
    # a burst) would be off by up to the burst's length, 0.6 or 1.6 s
    late = t > max(3.0, 2 * burst_s + 0.5)
    assert np.max(np.abs(err[late] - np.median(err[late]))) < 0.02
    assert abs(np.median(err[late])) < 0.02  # offset: the fastest delivery delay
    # evenly spaced through the bursts (arrival times would have put burst_s of samples at one instant)
    # (Movesense packet times are whole ms; the envelope fit may still slew by a few ms, at half speed)
    d = np.diff(t[late])
    assert np.mean(np.abs(d - 1 / rate) < 1.2e-3) > 0.99 and np.all(d > 0.5 / rate - 1e-9)


@pytest.mark.parametrize("burst_s", [0.3, 0.6])
def test_delayed_bursts_of_a_host_timed_sensor_are_no_gap(burst_s: float) -> None:
    """WitMotion has neither a device clock nor a counter: a burst (notifications held, then delivered at
    once) must not be taken for a loss. Its samples keep their sample-count spacing and nothing is counted
    lost (a loss would have made the arrivals after it late at the samples' own pace)."""
    spec = f"emulated:witmotion?speed=20&burst_every=2&burst_s={burst_s}&seed=2"
    src, sensor, events = asyncio.run(run_emulated(spec, 9.0))
    kinds = [e.kind for e in events if isinstance(e, SourceStatus)]
    assert kinds == ["connecting", "connected", "stopped"]  # no gap
    t_rx = np.array([r.t_host_s for r in events if isinstance(r, RawNotification)])
    assert np.sum(np.diff(t_rx) > burst_s - 0.1) >= 3  # the bursts happened
    t = np.concatenate([b.t_s for b in events if isinstance(b, ImuBatch)])
    d = np.diff(t[t > 3.0])  # (after the first burst's slew back onto the envelope)
    assert np.mean(np.abs(d * src.info.rate_hz - 1.0) < 0.2) > 0.99 and np.max(d) < 2.0 / src.info.rate_hz


def test_movesense_split_packets_under_loss_report_the_loss_configured() -> None:
    """10 % of the notifications lost: a packet of DATA + DATA_PART2 survives with (1 − 0.1)² = 81 %, so
    about 19 % of the samples are missing. The decoder keeps every packet it can prove whole and drops only
    those whose DATA_PART2 may belong to another packet (counted apart); the loss reported stays near 19 %."""
    loss = 0.1
    src, sensor, events = asyncio.run(run_emulated(f"emulated:movesense?speed=40&loss={loss}&seed=2", 60.0))
    rate = src.info.rate_hz
    stream = src.stream
    k0, k1 = (int(round((t - sensor.device_offset_s) * rate)) for t in (stream.first_device_s, stream.last_device_s))
    span = k1 - k0 + 1
    n = sum(len(e) for e in events if isinstance(e, ImuBatch))
    n_lost = sum(e.details["n_lost"] for e in events if isinstance(e, SourceStatus) and e.kind == "gap")
    assert n + n_lost == span and span > 50 * rate
    expected = 1.0 - (1.0 - loss) ** 2
    assert n_lost / span == pytest.approx(expected, abs=0.03)
    in_doubt = src.stream.decoder.n_split_dropped_samples
    assert 0 < in_doubt < 0.02 * span  # a packet is in doubt only where two notifications in a row were lost


def _silences(events: list) -> tuple[np.ndarray, np.ndarray]:
    """Start and length (s) of every interval between two notifications received."""
    t_rx = np.array([e.t_host_s for e in events if isinstance(e, RawNotification)])
    return t_rx[:-1], np.diff(t_rx)


def test_polar_notification_loss_is_not_taken_for_a_stall() -> None:
    """A Polar Verity Sense at 52 Hz sends acc and gyro in separate frames of up to ~110 samples (~2 s
    each). 5 % of the notifications lost (seed 0 loses an acc and a gyro frame in a row at ~4 s): over 3 s
    without any notification on a healthy link. The stall timeout follows the frames' span, so the link is
    kept and the loss is counted exactly, where a fixed 3 s timeout tore the link down and lost ~200
    more samples to the reconnect."""
    src, sensor, events = asyncio.run(run_emulated("emulated:polar_pmd?loss=0.05&speed=20&seed=0", 12.0))
    statuses = [e for e in events if isinstance(e, SourceStatus)]
    assert [s.kind for s in statuses if s.kind != "gap"] == ["connecting", "connected", "stopped"]
    assert sensor.n_lost >= 2
    _, silence = _silences(events)
    assert np.max(silence) > src.stall_timeout_s  # the fixed timeout would have fired here
    # the timeout in force: three frames' span, learned from the decoded frames (samples / rate)
    span = src.stream.notification_span_s
    assert 1.5 < span < 2.5
    assert np.max(silence) < src.stall_limit_s() <= 3 * 2.5
    # nothing but the radio's losses is missing (the emulated sensor's delivery record), all counted
    rate = src.info.rate_hz
    stream = src.stream
    k0, k1 = (int(round((t - sensor.device_offset_s) * rate)) for t in (stream.first_device_s, stream.last_device_s))
    n = sum(len(e) for e in events if isinstance(e, ImuBatch))
    n_lost = sum(s.details["n_lost"] for s in statuses if s.kind == "gap")
    assert n + n_lost == k1 - k0 + 1
    assert n_lost == sensor.missing(k0, k1)


def test_polar_stall_is_detected_after_three_frame_spans_and_recovered() -> None:
    """A Polar that stops notifying is still a lost link, found three frame spans after its last
    notification (longer than the 3 s floor: frames of ~2 s), and the stream resumes after a reconnect."""
    src, sensor, events = asyncio.run(run_emulated("emulated:polar_pmd?speed=20&stall_at=6&seed=1", 16.0))
    statuses = [e for e in events if isinstance(e, SourceStatus)]
    kinds = [e.kind for e in statuses]
    disc = statuses[kinds.index("disconnected")]
    assert "no data" in disc.message and sensor.n_withheld > 0
    # the frames received before the stall, decoded apart: samples of one stream per notification / rate
    raws = [e for e in events if isinstance(e, RawNotification) and e.t_host_s < disc.t_s]
    decoder = registry.get("polar_pmd").decoder(**src.info.metadata["decoder_context"])
    spans = [sum(len(b) for b in decoder.feed(r.char_uuid, r.data, r.t_host_s)) / src.info.rate_hz for r in raws]
    spans = [x for x in spans if x > 0]
    limit = 3.0 * max(spans[-16:])
    assert limit > src.stall_timeout_s + 1.0
    # detected within three spans plus a poll, not before
    last = raws[-1].t_host_s
    assert last + limit - 0.2 < disc.t_s < last + limit + 0.5
    assert kinds.count("connected") == 2
    t_conn = statuses[len(kinds) - 1 - kinds[::-1].index("connected")].t_s
    after = [e for e in events if isinstance(e, ImuBatch) and e.t_s[0] > t_conn]
    assert sum(len(b) for b in after) > 0.7 * src.info.rate_hz * (16.0 - t_conn - 2.5)


def test_a_slow_first_frame_is_not_a_stall_and_a_silent_sensor_still_is() -> None:
    """A Polar Verity Sense at 26 Hz fills its first frame for about 4 s: the link is kept (the 3 s floor
    tore it down before any sample arrived). A sensor that never sends after connecting is still found,
    ``FIRST_DATA_S`` after the connection."""
    src, _, events = asyncio.run(run_emulated("emulated:polar_pmd?speed=20&seed=1", 12.0, rate_hz=26.0))
    assert src.info.rate_hz == 26.0
    statuses = [e for e in events if isinstance(e, SourceStatus)]
    assert [s.kind for s in statuses] == ["connecting", "connected", "stopped"]
    t_conn = statuses[1].t_s
    decoder = registry.get("polar_pmd").decoder(**src.info.metadata["decoder_context"])
    t_first = next(r.t_host_s for r in events if isinstance(r, RawNotification)
                   and any(len(b) for b in decoder.feed(r.char_uuid, r.data, r.t_host_s)))
    assert t_first - t_conn > src.stall_timeout_s  # (the first data frame: after the floor)
    assert sum(len(b) for b in events if isinstance(b, ImuBatch)) > 26.0 * (12.0 - t_first)

    src, _, events = asyncio.run(run_emulated("emulated:movesense?speed=20&stall_at=0", 12.0))
    statuses = [e for e in events if isinstance(e, SourceStatus)]
    kinds = [s.kind for s in statuses]
    disc = statuses[kinds.index("disconnected")]
    assert "no data" in disc.message
    assert src.FIRST_DATA_S - 0.2 < disc.t_s - statuses[1].t_s < src.FIRST_DATA_S + 0.5
