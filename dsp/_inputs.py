"""Validation of the sample arrays every stage takes (one place, one set of messages)."""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_RATE_HZ = 20.0
"""Lowest sample rate the gait event detector (and so the analysis) takes, Hz."""
RATE_TOLERANCE = 1e-3
"""Relative slack of the rate limits, for a rate measured from time stamps: rounded to their last digit they
give 20 Hz as 19.99999999, and with a jitter of 0.1 ms (a simulated sensor's) 20 s of 2000 Hz read as
2000.025 Hz; a sensor's own clock may also run off by a few parts in 10,000."""


def check_chunk(t_s: Any, acc: Any, gyr: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``t_s`` (N,), ``acc_mps2`` (N, 3) and optional ``gyr_rads`` (N, 3) as finite float64 arrays in C order.

    Raises
    ------
    ValueError
        Wrong shapes, or NaN / inf anywhere (the message says which array and what to do).
    """
    t = np.asarray(t_s, dtype=np.float64).reshape(-1)
    a = np.ascontiguousarray(acc, dtype=np.float64)  # C order: vqf needs contiguous rows
    n = t.shape[0]
    if a.shape != (n, 3):
        raise ValueError(f"acc_mps2 must have shape ({n}, 3) to match t_s, got {a.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(t))):
        raise ValueError("t_s/acc_mps2 contain NaN or inf; drop or repair those samples first")
    g = None
    if gyr is not None:
        g = np.ascontiguousarray(gyr, dtype=np.float64)
        if g.shape != (n, 3):
            raise ValueError(f"gyr_rads must have shape ({n}, 3) to match t_s, got {g.shape}")
        if not np.all(np.isfinite(g)):
            raise ValueError("gyr_rads contains NaN or inf; drop or repair those samples first")
    return t, a, g
