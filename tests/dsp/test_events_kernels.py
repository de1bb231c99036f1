"""The block forms of the event detector (onsets, peaks, gait flags, final contacts and times of all the
candidates of a chunk at once) equal its readable step-by-step forms bit for bit, for any chunking."""

from dataclasses import astuple
from functools import cache

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pelvimon.dsp.events import GaitEventDetector
from pelvimon.sensors.simulator import SimParams, simulate


class _Reference(GaitEventDetector):
    """Every decision through the readable per-step code."""

    def _precompute_onsets(self, cross, lo, af):
        self._pre_on = {}
        self._c_below = None  # the flight test by the window's minimum

    def _fill_running(self):
        todo = [e for e in self._queue if e[6] and e[7] is None]
        self._fill_running_reference(todo)

    def _has_pending(self):
        return any(not e[6] and e[7] is None for e in self._queue)


@cache
def _data(gait: str) -> tuple[float, np.ndarray, np.ndarray]:
    sim = simulate(SimParams(seconds=40, gait=gait, seed=3))
    return sim.params.rate_hz, sim.batch.t_s, sim.batch.acc_mps2


def _run(cls, gait: str, cuts: list[int]) -> tuple[list[str], list[str]]:
    fs, t, acc = _data(gait)
    det = cls(fs)
    steps, states = [], []
    edges = [0, *sorted(c for c in cuts if 0 < c < t.size), t.size]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        det.update(t[a:b], acc[a:b])
        steps += det.steps_
        states += det.states_
    det.flush()
    steps += det.steps_
    states += det.states_
    return [_bits(s) for s in steps], [_bits(s) for s in states]


def _bits(rec) -> tuple:
    """The fields of a record, floats as their exact hex form (np.float64 and float alike)."""
    return tuple(float(v).hex() if isinstance(v, float) else v for v in astuple(rec))


def test_whole_runs_equal_reference():
    for gait in ("run", "walk"):
        fast = _run(GaitEventDetector, gait, [])
        ref = _run(_Reference, gait, [])
        assert len(fast[0]) > 40
        assert fast == ref


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["run", "walk"]), st.lists(st.integers(1, 8000), max_size=12))
def test_chunked_equal_reference(gait, cuts):
    assert _run(GaitEventDetector, gait, cuts) == _run(_Reference, gait, [])
