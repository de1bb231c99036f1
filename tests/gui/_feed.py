"""Test helpers: a stand-in engine fed by hand, and the events a simulated run produces."""

from __future__ import annotations

import functools
import threading
from typing import Any

from pelvimon.engine import EngineStats, SessionAnalyzer, Subscription
from pelvimon.sensors.simulator import SimParams, simulate
from pelvimon.sensors.source import SourceInfo


class FeedEngine:
    """The parts of ``SessionEngine`` a window uses; events are pushed by the test."""

    def __init__(self) -> None:
        self.subs: list[Subscription] = []
        self.running = False
        self.finished = threading.Event()
        self.recording_calls: list[bool] = []
        self.recording_path = None
        self.recordings: list[Any] = []
        self.error = None
        self.name = ""
        self.info = SourceInfo(name="Fake 1", protocol="movesense", rate_hz=208.0)
        self.started = 0
        self.stopped = 0

    def subscribe(self, maxlen: int = 20000) -> Subscription:
        s = Subscription(maxlen)
        self.subs.append(s)
        return s

    def push(self, events: list[Any]) -> None:
        for s in self.subs:
            for e in events:
                s.push(e)

    def start(self) -> None:
        self.started += 1
        self.running = True

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped += 1
        self.running = False
        self.finished.set()

    def set_recording(self, on: bool) -> None:
        self.recording_calls.append(on)


@functools.lru_cache(maxsize=4)
def sim_events(seconds: float = 45.0, cpd_left: float = 8.0, cpd_right: float = 4.0, seed: int = 1) -> tuple:
    """Every event the live analysis gives for a simulated run (chunks of 8 samples, like BLE packets)."""
    sim = simulate(SimParams(seconds=seconds, rate_hz=208.0, cpd_left_deg=cpd_left, cpd_right_deg=cpd_right, seed=seed))
    an = SessionAnalyzer(208.0)
    out: list[Any] = []
    b = sim.batch
    n = 0
    for i in range(0, len(b), 8):
        chunk = b.slice(i, min(i + 8, len(b)))
        n += len(chunk)
        out.append(chunk)
        out.extend(an.feed(chunk))
        if i % 208 == 0:
            out.append(EngineStats(float(chunk.t_s[-1]), n, 0, 0.0, len(an.steps), 80, float(chunk.t_s[-1]), None))
    out.extend(an.finish())
    return tuple(out)
