"""The calibration and orientation stages of an offline analysis, run in a helper process beside the rest.

:func:`pelvimon.analysis.run_pipeline` feeds a whole recording through the streaming pipeline. About half of
its time goes to the mount calibration and the orientation filter (VQF), and these two stages need nothing
from the others: they read the samples alone. On a machine with a second core they run in a forked child,
chunk by chunk ahead of the event detection, laterality and step metrics in the parent, which takes their
per-sample rows (:class:`~pelvimon.dsp.pipeline.MotionRows`) from shared memory. The code is the same
(:meth:`GaitPipeline.motion_rows`), so are the steps: the parent adopts the stages' state after the last
chunk the helper did (:meth:`GaitPipeline.adopt_motion_state`) and runs on by itself from there.

The helper covers the chunks up to the first gap (the samples bridged over a gap are the parent's). If it
cannot be started or stops early, the parent computes the rows itself, catching up from the first chunk:
the result does not depend on the helper.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import pickle
import signal
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np

from pelvimon.dsp.pipeline import GaitPipeline, MotionRows, PipelineParams
from pelvimon.firmware_protocols.batch import ImuBatch

MIN_SAMPLES = 1 << 16
"""Fewest samples worth a helper process (forking one takes a few milliseconds; the two stages take
about half a second per hour of 200 Hz samples)."""

SLOTS = 8
"""Chunks the helper may be ahead of the parent (the shared memory holds this many chunks' rows)."""


def usable() -> bool:
    """Whether a helper can run here: a POSIX fork on Linux (macOS frameworks are not fork-safe) and a
    second core for this process."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except OSError:  # pragma: no cover - affinity unknown
        return (os.cpu_count() or 1) >= 2


def ahead_prefix(chunks: Sequence[ImuBatch]) -> int:
    """How many of ``chunks`` (from the first) the helper can take: those before the first gap."""
    for i, c in enumerate(chunks):
        if i and c.gap_before:
            return i
    return len(chunks)


class MotionAhead:
    """The calibration and orientation rows of ``chunks``, one chunk per :meth:`next`, in order.

    Parameters
    ----------
    chunks : sequence of ImuBatch
        The chunks the parent's pipeline is given, none after a gap but the first (:func:`ahead_prefix`).
    rate_hz : float
        The pipeline's sample rate.
    params : PipelineParams, optional
        The pipeline's parameters.
    helper : bool
        Start a helper process (False: compute the rows here, one chunk per call).

    Use as a context manager: leaving it stops and reaps the helper.
    """

    _pid: int | None = None  # the helper (None: none runs)
    _pipe: BinaryIO | None = None  # the helper's messages: each chunk's events, then the state
    _ack: int | None = None  # the parent's word that it took a chunk's rows (its slot is free)
    _slots: np.ndarray | None = None  # (SLOTS, MotionRows.N_ROWS, longest chunk): chunk i's rows in slot i % SLOTS

    def __init__(
        self, chunks: Sequence[ImuBatch], rate_hz: float, params: PipelineParams | None = None, *, helper: bool = True
    ) -> None:
        self._chunks = list(chunks)
        self._new = lambda: GaitPipeline(rate_hz, params)
        self._done = 0  # chunks handed out
        self._local: GaitPipeline | None = None  # the pipeline computing here (no helper, or after it stopped)
        self.helper_failed = False
        """Whether a helper was started and stopped before its last chunk (the rows then came from here)."""
        try:
            if helper:
                self._start()
            if self._pid is None:
                self._local = self._new()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ parent
    def _start(self) -> None:
        """Fork the helper; nothing happens (the rows are then computed here) if that cannot be done."""
        longest = max((len(c) for c in self._chunks), default=0)
        if longest == 0 or not hasattr(os, "fork"):
            return
        fds: list[int] = []
        # an interrupt is held off from here until both processes know their part (the helper ignores it,
        # the parent reaps the helper): one between the fork and that would leave a helper running
        # the parent's code, or one nobody reaps
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            try:
                shared = mmap.mmap(-1, SLOTS * MotionRows.N_ROWS * longest * 8)  # anonymous, and shared with the child
                fds += os.pipe()
                fds += os.pipe()
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()  # (the child leaves with os._exit: nothing buffered is written twice)
                pid = os.fork()
            except OSError:
                for fd in fds:
                    os.close(fd)
                return
            r, w, ack_r, ack_w = fds
            slots = np.frombuffer(shared, dtype=np.float64).reshape(SLOTS, MotionRows.N_ROWS, longest)
            if pid == 0:  # pragma: no cover - the child (its work is checked through the parent's results)
                code = 1
                try:
                    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's to handle: it stops the helper
                    signal.pthread_sigmask(signal.SIG_SETMASK, held)
                    os.close(r)
                    os.close(ack_w)
                    self._serve(w, ack_r, slots)
                    code = 0
                finally:
                    os._exit(code)
            self._pid, self._ack, self._slots = pid, ack_w, slots
            os.close(w)
            os.close(ack_r)
            self._pipe = os.fdopen(r, "rb")
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def next(self) -> MotionRows:
        """The :class:`~pelvimon.dsp.pipeline.MotionRows` of the next chunk."""
        i = self._done
        if i >= len(self._chunks):
            raise IndexError("every chunk's motion rows were handed out")
        if self._pid is not None:
            got = self._receive()
            if isinstance(got, list):
                assert self._slots is not None and self._ack is not None
                rows = self._slots[i % SLOTS, :, : len(self._chunks[i])].copy()
                with contextlib.suppress(OSError):  # (a helper that stopped shows at the next message)
                    os.write(self._ack, b"\0")  # its slot may take another chunk
                self._done += 1
                return MotionRows(rows, got)
            self._fail()
        assert self._local is not None
        self._done += 1
        return self._local.motion_rows(self._chunks[i])

    def state(self) -> dict[str, Any]:
        """The stages' state after the last chunk handed out, for ``GaitPipeline.adopt_motion_state``."""
        if self._done != len(self._chunks):
            raise RuntimeError("internal: the motion state is taken after the last chunk")
        if self._pid is not None:
            got = self._receive()
            if isinstance(got, dict):
                self.close()  # (its work is done)
                return got
            self._fail()
        assert self._local is not None
        return self._local.motion_state()

    def _receive(self) -> Any:
        """The helper's next message, or None if it stopped (or sent something else)."""
        if self._pipe is None:
            return None
        try:
            return pickle.load(self._pipe)
        except Exception:  # noqa: BLE001 - a helper that stopped early: the parent takes over
            return None

    def _fail(self) -> None:
        """The helper stopped: stop waiting for it, and compute here, from the first chunk, up to where it
        got to."""
        self.close()
        self.helper_failed = True
        local = self._local = self._new()
        for c in self._chunks[: self._done]:
            local.motion_rows(c)

    def close(self) -> None:
        """Stop the helper (if it still runs) and reap it."""
        pid, self._pid = self._pid, None
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        if self._ack is not None:
            os.close(self._ack)
            self._ack = None
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._slots = None

    def __enter__(self) -> MotionAhead:
        return self

    def __del__(self) -> None:
        self.close()  # (one dropped without close(): its helper would wait for the parent's word forever)

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ child
    def _serve(self, fd: int, ack: int, slots: np.ndarray) -> None:  # pragma: no cover - runs in the child
        """In the helper: each chunk's rows into its slot of the shared memory (once the parent took the
        chunk that was there) and a message (its events); then the final state."""
        gc.freeze()  # the inherited objects stay out of the collector's scans (and their pages unwritten)
        pipe = self._new()
        with os.fdopen(fd, "wb") as out:
            for i, c in enumerate(self._chunks):
                if i >= SLOTS and not os.read(ack, 1):
                    return  # the parent is gone
                got = pipe.motion_rows(c, out=slots[i % SLOTS, :, : len(c)])
                pickle.dump(got.events, out)
                out.flush()
            pickle.dump(pipe.motion_state(), out)
            out.flush()


__all__ = ["MIN_SAMPLES", "MotionAhead", "ahead_prefix", "usable"]
