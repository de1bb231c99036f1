"""Causal Butterworth low-pass filters with their state carried from call to call.

The stages low-pass their signals with Butterworth filters (2nd order; the heading tracker's is 4th) that
must give the same bits whatever the chunking of the stream. ``scipy.signal`` has them (``butter``,
``sosfilt``), but importing it takes 0.3-0.45 s on the project's machine (it imports scipy.stats,
scipy.interpolate, scipy.optimize and scipy.spatial), a quarter of ``pelvimon analyze`` on an hour of data as
a new process. What the stages need is small: the design of an even-order Butterworth low-pass is closed
form, a section's input side is a three-tap convolution (``numpy.convolve``), and its output side over a
chunk a banded triangular solve, which BLAS does (``dtbsv``, through ``scipy.linalg.blas``). The tests
check both against ``scipy.signal``. It costs about 0.03 s more CPU per hour of 200 Hz data than
``sosfilt`` (BLAS' solve takes about 6 ns a sample, scipy's loop 5).

A section ``y[n] = b0 x[n] + b1 x[n-1] + b2 x[n-2] - a1 y[n-1] - a2 y[n-2]`` is run in direct form I: its
state is its last two inputs and outputs. A chunk is convolved with those two inputs before it and solved
with those two outputs prepended as fixed rows, so every sample's output is computed by the same operations
in the same order whether the chunk is a whole recording or one sample: the result does not depend on the
chunking.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import blas


def butter_lowpass_sos(order: int, cutoff_hz: float, rate_hz: float) -> np.ndarray:
    """Second-order sections ``(order / 2, 6)``, rows ``b0 b1 b2 1 a1 a2`` (``scipy.signal``'s layout), of
    the digital Butterworth low-pass of even ``order`` with its -3 dB point at ``cutoff_hz`` (bilinear
    transform with the cut-off pre-warped, as ``scipy.signal.butter``). Each section has gain 1 at 0 Hz.

    Raises
    ------
    ValueError
        An odd or non-positive order, or a cut-off outside (0, rate / 2).
    """
    if order < 2 or order % 2:
        raise ValueError(f"order must be an even number >= 2, got {order}")
    if not 0.0 < cutoff_hz < rate_hz / 2.0:
        raise ValueError(
            f"cutoff must be between 0 and half the sample rate ({rate_hz / 2.0:g} Hz), got {cutoff_hz:g}"
        )
    k = math.tan(math.pi * cutoff_hz / rate_hz)  # the pre-warped cut-off, bilinear transform's units
    rows = []
    for i in range(order // 2):
        # the analog prototype's pole pair i: s² + 2 zeta s + 1; mapped by s -> (z - 1) / (k (z + 1))
        zeta = math.sin(math.pi * (2 * i + 1) / (2 * order))
        a0 = 1.0 + 2.0 * zeta * k + k * k
        g = k * k / a0
        rows.append((g, 2.0 * g, g, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - 2.0 * zeta * k + k * k) / a0))
    return np.array(rows)


class Lowpass:
    """A filter in second-order sections, applied along the last axis of its input from a state the caller
    keeps (:meth:`rest_state`, then what each call returns).

    Parameters
    ----------
    sos : ndarray, shape (sections, 6)
        Rows ``b0 b1 b2 1 a1 a2``, each section with gain 1 at 0 Hz (:func:`butter_lowpass_sos`; scipy's
        ``butter`` puts the whole gain in its first section, which :meth:`rest_state` does not allow for).

    Notes
    -----
    The same bits for any chunking rest on BLAS' ``dtbsv`` updating the right-hand side column by column
    (the reference BLAS and OpenBLAS do; the standard does not promise it): the test suite checks it.
    """

    def __init__(self, sos: np.ndarray) -> None:
        self.sos = np.asarray(sos, dtype=np.float64).reshape(-1, 6)
        if not np.all(self.sos[:, 3] == 1.0):
            raise ValueError("sos rows must be b0 b1 b2 1 a1 a2 (a0 = 1)")
        # per section, the band of the triangular system (BLAS lower band storage, column major): row 1 holds
        # a1 under the diagonal, row 2 a2 two under it; the first column's a1 is 0 (the two prepended rows
        # are fixed). Grown to the longest chunk yet (the pipeline's chunks are at most 16384 samples).
        self._bands: list[np.ndarray] = [np.empty((3, 0), order="F") for _ in self.sos]

    def rest_state(self, x0: np.ndarray | float) -> np.ndarray:
        """The state of the filter at rest at ``x0`` (one value per channel: the input's shape without its
        last axis), shape ``(sections, 4) + x0.shape``: every section's last inputs and outputs are ``x0``."""
        x0 = np.asarray(x0, dtype=np.float64)
        return np.broadcast_to(x0, (self.sos.shape[0], 4) + x0.shape).copy()

    def __call__(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filter ``x`` along its last axis.

        Parameters
        ----------
        x : ndarray, shape (..., N)
            The input, one row per channel (not written).
        state : ndarray, shape (sections, 4, ...)
            The state before ``x[..., 0]``: per section, its last two inputs and outputs ``x[-2], x[-1],
            y[-2], y[-1]`` (:meth:`rest_state`, or what the previous call returned).

        Returns
        -------
        y : ndarray, shape (..., N)
        state : ndarray
            The state after the last sample (a new array of ``state``'s shape).
        """
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[-1]
        want = (self.sos.shape[0], 4) + x.shape[:-1]
        if np.shape(state) != want:
            raise ValueError(f"state must have shape {want} for this filter and input, got {np.shape(state)}")
        if n == 0:
            return np.empty(x.shape), np.array(state, dtype=np.float64)
        new = np.empty(state.shape)
        y = x
        for s, (b0, b1, b2, _, a1, a2) in enumerate(self.sos):
            st = state[s]
            r = np.empty(x.shape[:-1] + (n + 2,))  # per channel: the two last outputs, then the chunk's
            r[..., 0], r[..., 1] = st[2], st[3]
            band = self._band(s, n + 2, a1, a2)
            ext = np.empty(n + 2)  # a channel's input after its two last ones
            rows = zip(
                r.reshape(-1, n + 2), y.reshape(-1, n), st[0].reshape(-1), st[1].reshape(-1), strict=True
            )
            for row, xin, x2, x1 in rows:
                ext[0], ext[1] = x2, x1
                ext[2:] = xin
                # the input side: every sample's from three inputs, at the chunk's start as elsewhere
                row[2:] = np.convolve(ext, (b0, b1, b2), mode="valid")
                # the output side, in place (C order: each channel's row is contiguous, so f2py hands it
                # to BLAS and back as it is)
                if blas.dtbsv(2, band, row, lower=1, diag=1, overwrite_x=1) is not row:  # pragma: no cover
                    raise RuntimeError("internal: BLAS' dtbsv did not solve in place")
            new[s, 0] = st[1] if n == 1 else y[..., -2]
            new[s, 1] = y[..., -1]
            new[s, 2], new[s, 3] = r[..., -2], r[..., -1]
            y = r[..., 2:]
        return y, new

    def _band(self, s: int, m: int, a1: float, a2: float) -> np.ndarray:
        band = self._bands[s]
        if band.shape[1] < m:
            band = np.empty((3, m), order="F")
            band[0] = 1.0  # (the unit diagonal; not read)
            band[1] = a1
            band[1, 0] = 0.0
            band[2] = a2
            self._bands[s] = band
        return band[:, :m]
