"""Synthetic vertical specific force for the event detector's tests: Gaussian pulses on 1 g."""

import numpy as np


def gaussian_pulses(t: np.ndarray, centres_s: np.ndarray, pulses: list[tuple[float, float, float]]) -> np.ndarray:
    """The sum over ``centres_s`` (strike times, s) of one Gaussian per ``(offset s, height g, width s)`` of
    ``pulses``, centred ``offset`` after the strike, in g (add it to 1 g)."""
    out = np.zeros_like(t)
    for c in centres_s:
        for at, height, width in pulses:
            out += height * np.exp(-0.5 * ((t - (c + at)) / width) ** 2)
    return out
