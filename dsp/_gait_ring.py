"""A fixed-capacity ring buffer of per-sample channels addressed by absolute sample index.

The gait stages keep the last few seconds of their signals here so that memory stays bounded however long
a session runs, while event logic can read any window ``[i0, i1)`` of recent samples by absolute index.
"""

from __future__ import annotations

import numpy as np


class SampleRing:
    """Last ``capacity`` samples of ``n_channels`` float channels.

    Parameters
    ----------
    capacity : int
        Number of samples kept (older ones are overwritten).
    n_channels : int
        Number of channels per sample.

    Attributes
    ----------
    n_total : int
        Absolute index of the next sample to be appended (= samples appended since the last reset).
    """

    def __init__(self, capacity: int, n_channels: int) -> None:
        if capacity < 2 or n_channels < 1:
            raise ValueError("SampleRing needs capacity >= 2 and n_channels >= 1")
        self.capacity = int(capacity)
        self.n_channels = int(n_channels)
        self._buf = np.zeros((self.capacity, self.n_channels))
        self.n_total = 0

    def reset(self) -> None:
        """Forget all samples; absolute indices start again at 0."""
        self.n_total = 0

    @property
    def first(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self.n_total - self.capacity)

    def append(self, rows: np.ndarray) -> None:
        """Append ``rows`` (shape (N, n_channels)); only the last ``capacity`` rows of a long chunk matter."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, self.n_channels)
        n = rows.shape[0]
        if n == 0:
            return
        start = self.n_total
        if n > self.capacity:
            rows = rows[-self.capacity :]
            start += n - self.capacity
        m = rows.shape[0]
        pos = start % self.capacity
        first_part = min(m, self.capacity - pos)
        self._buf[pos : pos + first_part] = rows[:first_part]
        if first_part < m:
            self._buf[: m - first_part] = rows[first_part:]
        self.n_total += n

    def value(self, i: int, channel: int) -> float:
        """One held sample of one channel (absolute index ``i``)."""
        return float(self._buf[int(i) % self.capacity, channel])

    def get(self, i0: int, i1: int) -> np.ndarray:
        """Samples with absolute indices ``i0 .. i1-1`` (clipped to what is held), shape (M, n_channels)."""
        i0 = max(int(i0), self.first)
        i1 = min(int(i1), self.n_total)
        if i1 <= i0:
            return np.zeros((0, self.n_channels))
        p0 = i0 % self.capacity
        p1 = p0 + (i1 - i0)
        if p1 <= self.capacity:
            return self._buf[p0:p1]  # a view: read it before the next append
        return np.concatenate([self._buf[p0:], self._buf[: p1 - self.capacity]])
