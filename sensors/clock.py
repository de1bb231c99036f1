"""Device clock -> session time.

A BLE notification reaches the host some time after its last sample was measured: a delay that is never
negative (connection-event wait, radio retries, the operating system) and varies from a fraction of a
millisecond to tens of milliseconds. Host receive times are therefore a jittered, one-sided view of the
device clock. pelvimon maps device time to session time with a causal fit of the lower envelope of
``host - device``:

``t_session = offset + (1 + drift) * (t_device - anchor)``

- Observations ``(t_device, t_host)`` pair the device time of a notification's last sample with the host
  receive time (seconds since the session started).
- The residual ``r = t_host - (t_device - anchor)`` is binned in ``bin_s`` seconds of device time; each bin
  keeps its minimum (the notification that waited least). The last ``window_bins`` bins are kept (bounded
  memory).
- Drift: slope of the lower convex hull of the bin minima at their mean device time, once they span
  ``min_fit_span_s`` (the line below all points that is closest to them on average); clamped to
  ``±max_drift`` (crystals are within ±100 ppm; the clamp guards against a bad start).
- Offset: the lowest bin minimum after removing the drift: the line touches the envelope from below, so
  session time is the device time seen through the fastest delivery.
- A residual further than ``reanchor_s`` from the model (device rebooted, a wrap the decoder could not see,
  or a stretch of lost data on a host-timed sensor) re-anchors the fit at that point, keeping the drift.
  A late delivery of a device clock that went on without a jump (the link stalled and then delivered what
  it had queued) does not: its samples were measured when the device clock says, and session time goes on
  through the stall as it did before it. A queue is delivered in a burst; arrivals that stay that late for
  more than ``reanchor_s`` of host time mean the device clock itself fell behind (a sample counter that
  stopped while the sensor did), and re-anchor; after a lost link nothing is a queue, and a late arrival
  re-anchors at once. On a host-timed sensor (device time = sample count) late arrivals are a queue while
  they come bunched, and a loss when they come at the samples' pace.
- Session time never runs backwards: when a better (earlier) envelope point arrives, the mapped times
  slew towards it, session time advancing at least half as fast as device time (half a sample period
  regained per sample), so consecutive samples never overlap.

Protocols without a device clock (MetaWear without accounter, WitMotion) are de-jittered by
:class:`SampleClock`: sample ``k`` gets the synthetic device time ``k / rate_hz`` and goes through the same
fit, whose drift then absorbs the sensor's rate error. That rate error is measured between losses
(:class:`_StepFreeRate`) from the first seconds on, so that a sensor sampling a little slower than its
nominal rate is not taken for one losing samples. When that fit re-anchors (the stream fell behind the
host clock: notifications were lost without a counter to tell), session time jumps; the batch after the
jump is marked ``gap_before``, so that no step or asymmetry is computed across it.

Everything here is deterministic given the same inputs, so replay reproduces live session times exactly.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from pelvimon.firmware_protocols.batch import ImuBatch


class ClockMap:
    """Causal offset + drift fit of the lower envelope of ``host - device`` (see the module docstring).

    Parameters
    ----------
    bin_s : float
        Width of a residual bin, s of device time.
    window_bins : int
        Number of bins kept (the fit looks back ``bin_s * window_bins`` seconds).
    min_fit_span_s : float
        Device-time span the bins must cover before the drift is fitted (before: drift 0).
    max_drift : float
        Largest drift accepted, as a fraction (1e-3 = 1000 ppm).
    reanchor_s : float
        A residual this far (s) from the model re-anchors the fit, except, on a real device clock, arrivals
        that late whose device time went on from the last one: a stalled link delivering its queue, ignored
        for up to ``reanchor_s`` of host time (late for longer, the device clock fell behind; after
        :meth:`link_lost`, at once).
    late_s : float or None
        Set for synthetic device times (:class:`SampleClock`, host-timed streams, where the device time is the
        sample count): arrivals later than ``reanchor_s`` are a stalled link's queue only while they come
        bunched (each one's host time advanced by less than half its device time: the queue is being
        emptied); a late arrival that comes at the pace of the samples is a loss and re-anchors the fit (the
        first late arrival waits for the next to tell which). A whole bin whose fastest delivery is still
        this late (s) against the model also re-anchors the fit at that bin (a few samples lost without a
        counter), and so does, at once, the first arrival this late after :meth:`link_lost` (a known
        interruption: samples lost there). None: a real device clock.

    Attributes
    ----------
    offset_s_ : float or None
        Host time (s since session start) of the anchor device time, through the fastest delivery.
    drift_ : float
        Fitted rate error of the device clock relative to the host clock (session s per device s, minus 1).
    anchor_device_s_ : float or None
        Device time the fit is anchored at.
    n_reanchors_ : int
        How many times the fit was re-anchored.
    """

    def __init__(
        self,
        bin_s: float = 1.0,
        window_bins: int = 120,
        min_fit_span_s: float = 20.0,
        max_drift: float = 5e-4,
        reanchor_s: float = 1.0,
        late_s: float | None = None,
    ) -> None:
        self.bin_s = bin_s
        self.late_s = late_s
        self.window_bins = window_bins
        self.min_fit_span_s = min_fit_span_s
        self.max_drift = max_drift
        self.reanchor_s = reanchor_s
        self.offset_s_: float | None = None
        self.drift_ = 0.0
        self.anchor_device_s_: float | None = None
        self.n_reanchors_ = 0
        # drift to use while the bins span too little for a fit of their own (host-timed streams: the rate
        # measured between lost notifications, see :class:`_StepFreeRate`); None: keep the last fit's
        self.drift_hint: float | None = None
        self._bins: deque[tuple[int, float, float]] = deque(maxlen=window_bins)  # (bin, x, r_min)
        self._last_out: float | None = None
        self._last_dev: float | None = None
        # device time of the last observation; None before the first and after link_lost (nothing since is a
        # stalled link's queue)
        self._last_observed: float | None = None
        self._late_since: float | None = None  # host time of the first of the late arrivals ignored so far
        self._late_last: tuple[float, float] | None = None  # device and host time of the last of them

    # -- model --------------------------------------------------------------------------------------
    def predict(self, t_device_s: np.ndarray | float) -> np.ndarray:
        """Model session time of device times, without the no-backwards guard (s)."""
        if self.offset_s_ is None or self.anchor_device_s_ is None:
            raise ValueError("ClockMap.predict: no observation yet")
        x = np.asarray(t_device_s, dtype=np.float64) - self.anchor_device_s_
        return self.offset_s_ + (1.0 + self.drift_) * x

    def link_lost(self) -> None:
        """The link was lost: what arrives after it is no stalled link's queue, so a delivery later than
        ``reanchor_s`` re-anchors at once (a device clock that stopped meanwhile)."""
        self._last_observed = None

    def _anchor(self, t_device_s: float, t_host_s: float) -> None:
        self._late_since = self._late_last = None
        self.anchor_device_s_ = t_device_s
        self._bins.clear()
        self._bins.append((0, 0.0, t_host_s))
        self.offset_s_ = t_host_s

    def observe(self, t_device_s: float, t_host_s: float) -> bool:
        """Add one observation: device time of a notification's last sample, its host receive time (s).

        Returns
        -------
        bool
            True if this observation re-anchored the fit.
        """
        d = float(t_device_s)
        h = float(t_host_s)
        last, self._last_observed = self._last_observed, d
        if self.anchor_device_s_ is None:
            self._anchor(d, h)
            return False
        residual = h - float(self.predict(d))
        # after a known interruption, a host-timed stream that arrives late has lost samples (no queue to wait
        # for): re-anchor at once, so its times jump here, where the loss is reported, and not again later
        # when a whole bin is found late (the same loss counted twice)
        lost_late = last is None and self.late_s is not None and residual > self.late_s
        if abs(residual) > self.reanchor_s or lost_late:
            # (device time may step back a little: streams observed apart, such as Polar's acc and gyro frames)
            if residual > 0 and last is not None and d > last - self.bin_s:
                if self.late_s is None:
                    if self._late_since is None:
                        self._late_since = h
                    if h - self._late_since <= self.reanchor_s:
                        return False  # delivered late, measured on time: nothing to learn about the envelope
                else:
                    prev, self._late_last = self._late_last, (d, h)
                    if prev is None or h - prev[1] < 0.5 * (d - prev[0]):
                        return False  # the first late arrival, or a queue being emptied
            self._anchor(d, h)
            self.n_reanchors_ += 1
            return True
        self._late_since = self._late_last = None
        x = d - self.anchor_device_s_
        r = h - x
        k = int(np.floor(x / self.bin_s))
        if self._bins and self._bins[-1][0] == k:
            if r < self._bins[-1][2]:
                self._bins[-1] = (k, x, r)
                self._refit()
        elif self._bins and k < self._bins[-1][0]:
            return False  # device time went back a little (reordered part); nothing to learn
        else:
            if self.late_s is not None and len(self._bins) >= 2:
                kb, xb, rb = self._bins[-1]
                # the bin's fastest delivery (host time rb + xb) against the model's host time for it
                if rb + xb - float(self.predict(xb + self.anchor_device_s_)) > self.late_s:
                    self._anchor(xb + self.anchor_device_s_, rb + xb)
                    self.n_reanchors_ += 1
                    return self.observe(d, h) or True
            self._bins.append((k, x, r))
            self._refit()
        return False

    def _refit(self) -> None:
        b = np.array(self._bins, dtype=np.float64)
        x, r = b[:, 1], b[:, 2]
        drift = self.drift_
        if len(b) >= 3 and x[-1] - x[0] >= self.min_fit_span_s:
            drift = _hull_slope(x, r)
        elif self.drift_hint is not None:
            drift = self.drift_hint
        self.drift_ = float(np.clip(drift, -self.max_drift, self.max_drift))
        self.offset_s_ = float(np.min(r - self.drift_ * x))

    # -- mapping ------------------------------------------------------------------------------------
    def map(self, t_device_s: np.ndarray) -> np.ndarray:
        """Session times (s) of one batch of device times (s), never before the previous batch's."""
        d = np.asarray(t_device_s, dtype=np.float64)
        t = self.predict(d)
        if len(t) == 0:
            return t
        if self._last_out is not None and self._last_dev is not None:
            if d[0] > self._last_dev:
                # catching up with an earlier envelope: session time runs at least at half speed, sample by
                # sample, so it slews back by half a sample period per sample and never overlaps
                floor = self._last_out + 0.5 * (d - self._last_dev) * (1.0 + self.drift_)
                t = np.maximum(t, floor)
            elif t[0] < self._last_out + 1e-6:
                t = t + (self._last_out + 1e-6 - t[0])
        self._last_out = float(t[-1])
        self._last_dev = float(d[-1])
        return t


def _hull_slope(x: np.ndarray, r: np.ndarray) -> float:
    """Slope of the lower convex hull edge of the points ``(x, r)`` above the mean of ``x``.

    Of all lines below every point, this one is closest to the points on average (the linear programme
    behind convex-hull clock-skew estimation): it rests on the fastest deliveries, not on the average
    delay, so a few milliseconds of jitter barely move it.
    """
    hull: list[tuple[float, float]] = []
    for p in zip(x.tolist(), r.tolist(), strict=True):
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    xm = float(x.mean())
    for (x1, y1), (x2, y2) in zip(hull[:-1], hull[1:], strict=True):
        if x1 <= xm <= x2 and x2 > x1:
            return (y2 - y1) / (x2 - x1)
    return 0.0


class _StepFreeRate:
    """Rate error of a host-timed stream, measured between its lost notifications.

    Without a counter, a lost notification and a sensor that samples slower than its nominal rate look
    alike in the long run: both make ``host - device`` grow (device time = sample count / nominal rate).
    They differ in shape: a loss raises it by a whole notification's span at once, a slow sample clock by a
    little at every sample. So the residual's minimum is taken per ``bin_s`` of device time, and the rate
    error is the sum of the rises from bin to bin over the device time they cover, leaving out each rise or
    fall of more than ``step_frac`` of a notification's span beyond the current estimate (a loss, a stall,
    a host hiccup) with the pairs either side of it: the bin a loss fell into has fewer arrivals before the
    loss to take its minimum from, so its minimum sits high, and a late bin comes back down in the next
    pair. Pairs over the last ``keep_s`` seconds are kept; the estimate is given once the pairs kept cover
    ``min_s``, are at least 80 % of all pairs and give it to within ``max_se`` (standard error from their
    scatter): under loss, bursts or a noisy host, steps that the arrival jitter hides would be taken for a
    slow clock.
    """

    def __init__(
        self, bin_s: float = 0.1, keep_s: float = 60.0, min_s: float = 4.0, step_frac: float = 0.7, max_se: float = 1e-3
    ) -> None:
        self.bin_s = bin_s
        self.keep_s = keep_s
        self.min_s = min_s
        self.step_frac = step_frac
        self.max_se = max_se
        self._cur: tuple[int, float, float] | None = None  # the bin being filled: (index, device time, min)
        self._prev: tuple[int, float, float] | None = None  # the last bin filled
        self._pairs: deque[list] = deque()  # [device time covered, rise, kept] of consecutive bins
        self._span = 0.0  # device time covered by all pairs
        self._dx = 0.0  # ... by those kept
        self._dr = 0.0  # their rises
        self._n_kept = 0
        self._skip_next = False
        self._drift: float | None = None

    def drift(self) -> float | None:
        """Session seconds per device second, minus 1, or None while too little is measured."""
        return self._drift

    def _mean(self) -> float:
        """The rise per device second over the pairs kept (0 with none)."""
        return self._dr / self._dx if self._dx > 0 else 0.0

    def _measure(self) -> float | None:
        if self._dx < self.min_s or 5 * self._n_kept < 4 * len(self._pairs):
            return None
        est = self._mean()
        # its standard error: each run of kept pairs adds up to the rise between its two end bins, whose
        # minima scatter by sigma (from the kept pairs' scatter about the estimate)
        ss, runs, before = 0.0, 0, False
        for dx, dr, kept in self._pairs:
            if kept:
                ss += (dr - est * dx) ** 2
                runs += not before
            before = kept
        sigma2 = ss / (2 * self._n_kept)
        if 2 * runs * sigma2 > (self.max_se * self._dx) ** 2:
            return None
        return est

    def add(self, t_device_s: float, t_host_s: float, span_s: float) -> None:
        """One notification: the device time of its last sample, its host receive time and the device time
        one notification covers (s)."""
        k = int(np.floor(t_device_s / self.bin_s))
        r = t_host_s - t_device_s
        cur = self._cur
        if cur is None or k > cur[0]:
            if cur is not None:
                self._close(cur, span_s)
            self._cur = (k, t_device_s, r)
        elif k == cur[0] and r < cur[2]:
            self._cur = (k, t_device_s, r)

    def _close(self, b: tuple[int, float, float], span_s: float) -> None:
        prev, self._prev = self._prev, b
        if prev is None:
            return
        dx, dr = b[1] - prev[1], b[2] - prev[2]
        est = self._mean()
        lim = self.step_frac * span_s
        step = b[0] - prev[0] > 2 or abs(dr - est * dx) > lim
        if not step and self._pairs:  # (a step split over two pairs by the bin it fell into)
            dx2, dr2 = dx + self._pairs[-1][0], dr + self._pairs[-1][1]
            step = abs(dr2 - est * dx2) > lim
        if step and self._pairs and self._pairs[-1][2]:
            self._drop(self._pairs[-1])  # the pair before it
        keep = not (step or self._skip_next)
        self._skip_next = step
        self._pairs.append([dx, dr, keep])
        self._span += dx
        if keep:
            self._dx += dx
            self._dr += dr
            self._n_kept += 1
        while self._span - self._pairs[0][0] >= self.keep_s:
            old = self._pairs.popleft()
            self._span -= old[0]
            if old[2]:
                self._drop(old)
        self._drift = self._measure()

    def _drop(self, pair: list) -> None:
        pair[2] = False
        self._dx -= pair[0]
        self._dr -= pair[1]
        self._n_kept -= 1


class SampleClock:
    """De-jittered session times for protocols without a device clock (host receive times only).

    Sample ``k`` of the stream gets the synthetic device time ``k / rate_hz``; :class:`ClockMap` fits the
    lower envelope of host receive times against it, so the sensor's true rate shows up as drift.

    Parameters
    ----------
    rate_hz : float
        Nominal sample rate.
    reanchor_s : float
        Late arrivals by more than this (s) re-anchor the fit when they come at the samples' own pace
        (samples were lost without a counter), not when they come bunched (a stalled link's queue; see
        ``late_s`` of :class:`ClockMap`).
    """

    def __init__(self, rate_hz: float, reanchor_s: float = 0.25) -> None:
        if rate_hz <= 0:
            raise ValueError(f"SampleClock: rate_hz must be > 0, got {rate_hz}")
        self.rate_hz = rate_hz
        self.map_ = ClockMap(reanchor_s=reanchor_s, max_drift=0.05, late_s=max(3.0 / rate_hz, 0.03))
        self.n_samples_ = 0
        self._rate = _StepFreeRate()
        self.reanchored_ = False  # the last stamp() re-anchored the fit: its times jumped

    def stamp(self, n: int, t_host_s: float, n_lost: int = 0) -> np.ndarray:
        """Session times (s) of the ``n`` samples of a notification received at ``t_host_s``."""
        self.n_samples_ += int(n_lost)
        k = self.n_samples_ + np.arange(n, dtype=np.float64)
        self.n_samples_ += n
        d = k / self.rate_hz
        if n:
            self._rate.add(float(d[-1]), t_host_s, n / self.rate_hz)
            self.map_.drift_hint = self._rate.drift()
        self.reanchored_ = bool(n) and self.map_.observe(float(d[-1]), t_host_s)
        return self.map_.map(d)


class SessionClock:
    """Puts decoded batches on session time: :class:`ClockMap` for device-clock batches, one
    :class:`SampleClock` per stream (set of channels) for host-timed ones.

    Parameters
    ----------
    rate_hz : float
        Nominal sample rate (used for host-timed batches).
    reanchor_s : float
        See :class:`ClockMap`.
    """

    def __init__(self, rate_hz: float, reanchor_s: float = 1.0) -> None:
        self.rate_hz = rate_hz
        self.device = ClockMap(reanchor_s=reanchor_s)
        self.host: dict[tuple[bool, ...], SampleClock] = {}

    def observe(self, batch: ImuBatch, t_host_s: float) -> None:
        """Learn from a device-clock batch as decoded: its last sample was received at ``t_host_s``."""
        if batch.time_base == "device" and len(batch):
            self.device.observe(float(batch.t_s[-1]), t_host_s)

    def link_lost(self) -> None:
        """The link was lost (see :meth:`ClockMap.link_lost`). Host-timed streams learn it from the
        ``gap_before`` of their next batch (:meth:`to_session`)."""
        self.device.link_lost()

    def map_device(self, batch: ImuBatch, *, gap_before: bool = False) -> ImuBatch:
        """A device-clock batch on session time (after :meth:`observe`; merged streams map once)."""
        t = self.device.map(batch.t_s) if len(batch) else batch.t_s
        return _with_times(batch, t, gap_before)

    def to_session(self, batch: ImuBatch, t_host_s: float, *, gap_before: bool = False) -> ImuBatch:
        """The batch on session time (``time_base="session"``); ``gap_before`` (the stream was interrupted before
        it) is or-ed into the batch's."""
        if batch.time_base == "session":
            t = batch.t_s
        elif batch.time_base == "device":
            self.observe(batch, t_host_s)
            return self.map_device(batch, gap_before=gap_before)
        else:  # one sample clock per stream (acc and gyro may come as separate streams)
            key = (batch.acc_mps2 is None, batch.gyr_rads is None, batch.mag_uT is None, batch.quat_wxyz is None)
            if key not in self.host:
                self.host[key] = SampleClock(self.rate_hz)
            clock = self.host[key]
            if gap_before:
                clock.map_.link_lost()  # a known interruption: a late arrival after it is a loss, not a queue
            t = clock.stamp(len(batch), t_host_s, batch.n_lost)
            gap_before = gap_before or clock.reanchored_
        return _with_times(batch, t, gap_before)


def _with_times(batch: ImuBatch, t: np.ndarray, gap_before: bool) -> ImuBatch:
    return ImuBatch(
        t_s=t,
        acc_mps2=batch.acc_mps2,
        gyr_rads=batch.gyr_rads,
        mag_uT=batch.mag_uT,
        quat_wxyz=batch.quat_wxyz,
        seq=batch.seq,
        gap_before=batch.gap_before or gap_before,
        n_lost=batch.n_lost,
        time_base="session",
        native=batch.native,
    )
