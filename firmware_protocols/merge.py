"""Merge separately timed acc / gyro / mag streams into combined ``ImuBatch``\\ es on the accelerometer's clock.

Several protocols (Polar PMD, MetaWear) send the accelerometer and the gyroscope as separate streams, each
with its own sample times. :class:`ImuMerger` outputs batches on the accelerometer's sample times with the
other streams linearly interpolated onto them.

Rules
-----
- Never extrapolate: an accelerometer sample is held until every expected stream has data on both sides of
  it (or exactly at it). Samples before a stream's first sample can never be covered and are output without
  that stream.
- Bounded: a held sample is given up on (output with the streams that do cover it, possibly acc alone) when
  a later accelerometer batch reaches ``max_hold_s`` beyond it or more than ``max_hold_samples`` are held,
  so an accelerometer-only device never stalls (once a stream was given up on before its first sample, it
  is no longer waited for). Samples of the batch being fed never time out in that same call, so a whole
  recording fed as one batch per stream, in any order, is merged completely. The other streams keep at
  most ``max_buffer_samples`` samples.
- Never bridge a gap: accelerometer samples strictly between the last sample of another stream before a
  gap (``gap_before`` of its next batch) and the first one after it are output without that stream, and
  the first sample merged again after the gap is flagged too.
- Gap flags: an accelerometer batch's ``gap_before`` / ``n_lost`` stay on its first sample; a gap in another
  stream flags the first accelerometer sample after the last sample before that gap (the first one whose
  interpolated value spans the gap). Every flagged sample starts a new output batch.
- Streaming equals batch: output samples depend on the data, not on how it was chunked, as long as the
  streams arrive within ``max_hold_s`` of each other (then no sample is given up on).

Quaternions, sequence numbers and ``native`` values are not carried into the merged batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .batch import ImuBatch

_CHANNEL_ATTR = {"acc": "acc_mps2", "gyr": "gyr_rads", "mag": "mag_uT"}
_SAME_S = 1e-6
"""Times closer than this (s) are the same sample instant (timestamps of two streams rounded apart)."""


class _Stream:
    """Buffered samples of one interpolated stream, with pending gap thresholds."""

    def __init__(self) -> None:
        self.t = np.zeros(0)
        self.v = np.zeros((0, 3))
        self.gaps: list[float] = []  # a gap lies after this time: flag the first acc sample later than it
        self.holes: list[tuple[float, float]] = []  # (last sample before a gap, first after): never bridged

    def clear(self) -> None:
        self.t = np.zeros(0)
        self.v = np.zeros((0, 3))
        self.gaps = []
        self.holes = []


class ImuMerger:
    """Combine acc, gyro (and mag) streams on the accelerometer's sample times.

    Parameters
    ----------
    expect : sequence of {"acc", "gyr", "mag"}
        Streams to combine; must include "acc" (the time base). ``("acc",)`` passes acc through.
    max_hold_s : float
        Longest span of accelerometer data, in s, that may be held waiting for the other streams.
    max_hold_samples : int
        Most accelerometer samples held at once.
    max_buffer_samples : int
        Most samples kept per interpolated stream.

    Notes
    -----
    Feed every batch of the sensor with :meth:`feed`; batches of streams not in ``expect`` (and channels
    not expected inside a combined batch) are ignored. :meth:`flush` gives up on everything still held.
    """

    def __init__(
        self,
        expect: Sequence[str] = ("acc", "gyr"),
        max_hold_s: float = 5.0,
        max_hold_samples: int = 4096,
        max_buffer_samples: int = 8192,
    ) -> None:
        self.expect = expect
        self.max_hold_s = max_hold_s
        self.max_hold_samples = max_hold_samples
        self.max_buffer_samples = max_buffer_samples
        streams = tuple(expect)
        unknown = [s for s in streams if s not in _CHANNEL_ATTR]
        if unknown or "acc" not in streams:
            raise ValueError(f"ImuMerger: expect={expect!r}; use 'acc' plus any of 'gyr', 'mag'")
        if not (max_hold_s > 0 and max_hold_samples > 0 and max_buffer_samples > 1):
            raise ValueError("ImuMerger: max_hold_s, max_hold_samples must be > 0 and max_buffer_samples > 1")
        self._others = tuple(s for s in streams if s != "acc")
        self.reset()

    def reset(self) -> None:
        """Drop everything held (after a reconnect)."""
        self._t = np.zeros(0)
        self._acc = np.zeros((0, 3))
        self._gap = np.zeros(0, dtype=bool)
        self._lost = np.zeros(0, dtype=np.int64)
        self._last_acc_t = -np.inf
        self._time_base = "device"
        self._streams = {s: _Stream() for s in self._others}
        self._absent: set[str] = set()  # streams given up on before their first sample

    @property
    def n_held(self) -> int:
        """Accelerometer samples waiting for the other streams."""
        return int(self._t.shape[0])

    def feed(self, batch: ImuBatch) -> list[ImuBatch]:
        """Take one batch (any stream or a combined one); return the merged batches now complete."""
        out: list[ImuBatch] = []
        if len(batch) == 0:
            return out
        t = batch.t_s
        n_old = self._t.shape[0]  # only samples held before this call can time out
        for name in self._others:
            values = getattr(batch, _CHANNEL_ATTR[name])
            if values is not None:
                self._add_other(name, t, values, batch.gap_before)
                self._absent.discard(name)
        if batch.acc_mps2 is not None:
            if t[0] <= self._last_acc_t:
                # the clock stepped back: give up on what is held and start over from this batch
                out += self._emit(force=True)
                n_old = 0
                self._last_acc_t = -np.inf
                for name in self._others:
                    st = self._streams[name]
                    if st.t.size and st.t[-1] > t[-1] + self.max_hold_s:
                        st.clear()  # still on the old clock
                gap, lost = True, batch.n_lost
            else:
                gap, lost = batch.gap_before, batch.n_lost
            self._time_base = batch.time_base
            g = np.zeros(len(batch), dtype=bool)
            g[0] = gap
            nl = np.zeros(len(batch), dtype=np.int64)
            nl[0] = lost
            self._t = np.concatenate([self._t, t])
            self._acc = np.concatenate([self._acc, batch.acc_mps2])
            self._gap = np.concatenate([self._gap, g])
            self._lost = np.concatenate([self._lost, nl])
            self._last_acc_t = float(t[-1])
        out += self._emit(force=False, n_old=n_old)
        return out

    def flush(self) -> list[ImuBatch]:
        """Output every held sample with the streams that cover it (end of a session)."""
        return self._emit(force=True)

    # -- internals ---------------------------------------------------------------------------------------
    def _add_other(self, name: str, t: np.ndarray, values: np.ndarray, gap_before: bool) -> None:
        st = self._streams[name]
        if st.t.size and t[0] <= st.t[-1]:
            st.clear()  # time went back: a new run of this stream
            st.gaps.append(-np.inf)
        elif gap_before:
            st.gaps.append(float(st.t[-1]) if st.t.size else -np.inf)
            ref = st.t if st.t.size >= 2 else t
            period = float(np.median(np.diff(ref[-16:]))) if ref.size >= 2 else 0.0
            if st.t.size and float(t[0] - st.t[-1]) > 1.5 * period:  # samples of this stream are missing
                st.holes.append((float(st.t[-1]), float(t[0])))
                del st.holes[:-64]
                st.gaps.append(float(t[0]) - 2 * _SAME_S)  # and the first sample merged again after the hole
        st.t = np.concatenate([st.t, t])
        st.v = np.concatenate([st.v, values])
        if st.t.size > self.max_buffer_samples:
            cut = st.t.size - self.max_buffer_samples
            st.t, st.v = st.t[cut:], st.v[cut:]
        if len(st.gaps) > 64:
            st.gaps = st.gaps[-64:]

    def _emit(self, force: bool, n_old: int = 0) -> list[ImuBatch]:
        n = self._t.shape[0]
        if n == 0:
            return []
        ta = self._t
        covered: dict[str, np.ndarray] = {}
        decided = np.ones(n, dtype=bool)
        for name in self._others:
            st = self._streams[name]
            if st.t.size:
                # the same instant computed from two streams' timestamps may differ by rounding
                cov = (ta >= st.t[0] - _SAME_S) & (ta <= st.t[-1] + _SAME_S)
                decided &= cov | (ta < st.t[0])
                for a, b in st.holes:  # samples lost from this stream: not interpolated across
                    cov &= ~((ta > a + _SAME_S) & (ta < b - _SAME_S))
            else:
                cov = np.zeros(n, dtype=bool)
                if name not in self._absent:
                    decided &= False
            covered[name] = cov
        if not force:
            old = np.arange(n) < n_old
            timed_out = old & ((ta[-1] - ta) > self.max_hold_s)
            if n > self.max_hold_samples:
                timed_out[: min(n - self.max_hold_samples, n_old)] = True
            decided |= timed_out
        m = n if force or decided.all() else int(np.argmin(decided))
        if m == 0:
            return []
        for name in self._others:
            if not self._streams[name].t.size:
                self._absent.add(name)  # never seen and given up on: stop waiting for it
        t = ta[:m]
        flags = self._gap[:m].copy()
        values: dict[str, np.ndarray] = {}
        for name in self._others:
            st = self._streams[name]
            cov = covered[name][:m]
            if cov.any():
                v = np.empty((m, 3))
                v[:] = np.nan
                idx = np.flatnonzero(cov)
                for c in range(3):
                    v[idx, c] = np.interp(t[idx], st.t, st.v[:, c])
                values[name] = v
            remaining = []
            for tau in st.gaps:
                later = np.flatnonzero(t > tau)
                if later.size:
                    flags[later[0]] = True
                else:
                    remaining.append(tau)
            st.gaps = remaining
        out = self._batches(t, self._acc[:m], values, covered, flags, self._lost[:m], m)
        # keep held samples and, per stream, the last sample at or before the last output time
        self._t, self._acc, self._gap, self._lost = ta[m:], self._acc[m:], self._gap[m:], self._lost[m:]
        t_last = t[-1]
        for name in self._others:
            st = self._streams[name]
            if st.t.size:
                keep = max(int(np.searchsorted(st.t, t_last, side="right")) - 1, 0)
                st.t, st.v = st.t[keep:], st.v[keep:]
            st.holes = [h for h in st.holes if h[1] > t_last]
        return out

    def _batches(
        self,
        t: np.ndarray,
        acc: np.ndarray,
        values: dict[str, np.ndarray],
        covered: dict[str, np.ndarray],
        flags: np.ndarray,
        lost: np.ndarray,
        m: int,
    ) -> list[ImuBatch]:
        # a new batch starts at every flag and wherever the set of covering streams changes
        code = np.zeros(m, dtype=np.int64)
        for i, name in enumerate(self._others):
            code |= covered[name][:m].astype(np.int64) << i
        starts = np.flatnonzero(flags | np.concatenate([[True], code[1:] != code[:-1]]))
        bounds = np.append(starts, m)
        out = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            kw: dict[str, Any] = {}
            for i, name in enumerate(self._others):
                if code[a] >> i & 1:
                    kw[_CHANNEL_ATTR[name]] = values[name][a:b]
            out.append(
                ImuBatch(
                    t_s=t[a:b],
                    acc_mps2=acc[a:b],
                    gap_before=bool(flags[a]),
                    n_lost=int(lost[a]),
                    time_base=self._time_base,  # type: ignore[arg-type]
                    **kw,
                )
            )
        return out
