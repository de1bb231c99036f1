"""The ``ImuBatch`` record: a block of IMU samples, the currency between every layer of pelvimon.

It lives in ``firmware_protocols`` (the bottom layer, standard library and numpy only) because decoders
produce it; every other layer imports it from here or from ``pelvimon.records``.

Quaternions are scalar first, ``[w, x, y, z]``, throughout pelvimon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

G_MPS2 = 9.80665
"""Standard gravity, m/s² per g (the value the vendor SDKs use)."""

TimeBase = Literal["device", "host", "session"]


class ImuBatchError(ValueError):
    """An ``ImuBatch`` was built with inconsistent shapes or values."""


def _as_rows(name: str, a: np.ndarray | None, n: int, width: int) -> np.ndarray | None:
    if a is None:
        return None
    arr = np.ascontiguousarray(a, dtype=np.float64)  # C order: filters such as vqf need it
    if arr.shape != (n, width):
        raise ImuBatchError(f"ImuBatch.{name} must have shape ({n}, {width}), got {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class ImuBatch:
    """A block of IMU samples in SI units.

    Attributes
    ----------
    t_s : ndarray, shape (N,), float64
        Sample times in seconds on the clock named by ``time_base``: the device clock as decoded (unwrapped
        within the decoder where the protocol allows), host receive time for protocols without a device
        clock, or session time once mapped by the sensors layer.
    acc_mps2 : ndarray, shape (N, 3), or None
        Specific force (gravity included, as the accelerometer reads it) in m/s², sensor frame.
    gyr_rads : ndarray, shape (N, 3), or None
        Angular rate in rad/s, sensor frame. ``None`` for accelerometer-only data.
    mag_uT : ndarray, shape (N, 3), or None
        Magnetic field in µT, sensor frame.
    quat_wxyz : ndarray, shape (N, 4), or None
        On-board fusion orientation (sensor to the device's earth frame), scalar first.
    seq : ndarray, shape (N,), int64, or None
        Per-sample sequence numbers where the protocol has a counter.
    gap_before : bool
        Loss was detected between the previous batch of this stream and this one.
    n_lost : int
        Number of samples known to be missing before this batch (0 if unknown or none).
    time_base : {"device", "host", "session"}
        Which clock ``t_s`` is on.
    native : dict or None
        The values in the vendor's own units (for display by ``pelvimon decode``), keyed by channel.
    """

    t_s: np.ndarray
    acc_mps2: np.ndarray | None = None
    gyr_rads: np.ndarray | None = None
    mag_uT: np.ndarray | None = None
    quat_wxyz: np.ndarray | None = None
    seq: np.ndarray | None = None
    gap_before: bool = False
    n_lost: int = 0
    time_base: TimeBase = "device"
    native: dict[str, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        t = np.ascontiguousarray(self.t_s, dtype=np.float64)
        if t.ndim != 1:
            raise ImuBatchError(f"ImuBatch.t_s must be one-dimensional, got shape {t.shape}")
        n = t.shape[0]
        object.__setattr__(self, "t_s", t)
        object.__setattr__(self, "acc_mps2", _as_rows("acc_mps2", self.acc_mps2, n, 3))
        object.__setattr__(self, "gyr_rads", _as_rows("gyr_rads", self.gyr_rads, n, 3))
        object.__setattr__(self, "mag_uT", _as_rows("mag_uT", self.mag_uT, n, 3))
        object.__setattr__(self, "quat_wxyz", _as_rows("quat_wxyz", self.quat_wxyz, n, 4))
        if self.seq is not None:
            seq = np.asarray(self.seq, dtype=np.int64)
            if seq.shape != (n,):
                raise ImuBatchError(f"ImuBatch.seq must have shape ({n},), got {seq.shape}")
            object.__setattr__(self, "seq", seq)
        if self.acc_mps2 is None and self.gyr_rads is None and self.mag_uT is None and self.quat_wxyz is None:
            raise ImuBatchError("ImuBatch needs at least one of acc_mps2, gyr_rads, mag_uT, quat_wxyz")
        if self.n_lost < 0:
            raise ImuBatchError(f"ImuBatch.n_lost must be >= 0, got {self.n_lost}")

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    @property
    def has_gyro(self) -> bool:
        return self.gyr_rads is not None

    def slice(self, start: int, stop: int) -> ImuBatch:
        """Samples ``start:stop`` as a new batch; ``gap_before`` and ``n_lost`` stay with the first slice."""

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[start:stop]

        first = start == 0
        return ImuBatch(
            t_s=self.t_s[start:stop],
            acc_mps2=cut(self.acc_mps2),
            gyr_rads=cut(self.gyr_rads),
            mag_uT=cut(self.mag_uT),
            quat_wxyz=cut(self.quat_wxyz),
            seq=cut(self.seq),
            gap_before=self.gap_before and first,
            n_lost=self.n_lost if first else 0,
            time_base=self.time_base,
        )

    @staticmethod
    def concat(batches: list[ImuBatch]) -> ImuBatch:
        """Join batches of the same stream (same channels and time base) into one."""
        if not batches:
            raise ImuBatchError("ImuBatch.concat needs at least one batch")
        first = batches[0]

        def join(name: str) -> np.ndarray | None:
            parts = [getattr(b, name) for b in batches]
            if all(p is None for p in parts):
                return None
            if any(p is None for p in parts):
                raise ImuBatchError(f"ImuBatch.concat: channel {name} is present in some batches only")
            return np.concatenate(parts)

        return ImuBatch(
            t_s=np.concatenate([b.t_s for b in batches]),
            acc_mps2=join("acc_mps2"),
            gyr_rads=join("gyr_rads"),
            mag_uT=join("mag_uT"),
            quat_wxyz=join("quat_wxyz"),
            seq=join("seq"),
            gap_before=first.gap_before,
            n_lost=first.n_lost,
            time_base=first.time_base,
        )


def span_rate_hz(batches: list[ImuBatch]) -> float | None:
    """The sample rate of batches without gaps inside them: their samples' intervals over the time they
    span, ``sum(len - 1) / sum(t_last - t_first)``, Hz (:func:`median_rate_hz` where no batch spans time).

    Unlike the median interval, this is right for time stamps rounded to whole milliseconds (400 Hz read as
    intervals of 2 and 3 ms, whose median is 3 ms: 333 Hz) and for skewed host-time jitter, as long as the
    batches are cut at every gap (:func:`pelvimon.sensors.csv_source.split_at_gaps`).
    """
    n = sum(len(b) - 1 for b in batches if len(b) > 1)
    span = sum(float(b.t_s[-1] - b.t_s[0]) for b in batches if len(b) > 1)
    if n > 0 and span > 0:
        return n / span
    return median_rate_hz(batches)


def median_rate_hz(batches: list[ImuBatch]) -> float | None:
    """The sample rate the time stamps of a stream's batches give: one over the median interval between
    samples within a batch (a batch after a gap starts afresh, so no gap counts as an interval), Hz.

    Where no batch holds two increasing times (one sample per notification, e.g. Movella DOT, WitMotion)
    the intervals are taken across batches. None if there are not two increasing times at all.
    """
    dts = [np.diff(b.t_s) for b in batches if len(b) > 1]
    dt = np.concatenate(dts) if dts else np.zeros(0)
    dt = dt[dt > 0]
    if dt.size == 0:
        t = [b.t_s for b in batches if len(b)]
        dt = np.diff(np.concatenate(t)) if t else np.zeros(0)
        dt = dt[dt > 0]
    return 1.0 / float(np.median(dt)) if dt.size else None
