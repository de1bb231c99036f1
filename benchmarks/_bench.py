"""Pieces shared by the decoder benchmarks: a stretch of running-like samples and best-of timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch

R = TypeVar("R")


def simulated(seconds: float, rate_hz: float, t0_s: float = 1.0, noise: bool = False) -> ImuBatch:
    """Accelerometer and gyroscope samples swinging at a 1.4 Hz stride (step harmonics on the vertical),
    starting at ``t0_s``; with ``noise``, fixed-seed sensor noise (0.05 m/s², 0.01 rad/s)."""
    n = int(seconds * rate_hz)
    t = np.arange(n) / rate_hz
    step = 2 * np.pi * 1.4 * t
    acc = np.column_stack([2 * np.sin(step), np.cos(step), G_MPS2 + 4 * np.sin(2 * step)])
    gyr = np.column_stack([0.5 * np.sin(step), 0.3 * np.cos(step), 0.2 * np.sin(2 * step)])
    if noise:
        rng = np.random.default_rng(0)
        acc += rng.normal(0, 0.05, acc.shape)
        gyr += rng.normal(0, 0.01, gyr.shape)
    return ImuBatch(t_s=t0_s + t, acc_mps2=acc, gyr_rads=gyr)


def best_of(repeat: int, fn: Callable[[], R]) -> tuple[float, R]:
    """The shortest wall time of ``repeat`` calls of ``fn``, s, and the last call's result."""
    best = float("inf")
    out: R
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
