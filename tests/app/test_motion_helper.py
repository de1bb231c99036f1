"""The calibration and orientation stages in a helper process give the steps of the pipeline run alone."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pelvimon import motion_helper
from pelvimon.analysis import run_pipeline
from pelvimon.dsp.calibration import CalibrationParams
from pelvimon.dsp.pipeline import CalibrationChange, GaitPipeline, MountMoved, PipelineParams
from pelvimon.firmware_protocols.batch import ImuBatch
from pelvimon.sensors.simulator import SimParams, simulate

FS = 200.0
needs_helper = pytest.mark.skipif(not motion_helper.usable(), reason="no fork or no second core here")


def _chunks(batch: ImuBatch, n: int) -> list[ImuBatch]:
    return [batch.slice(a, min(len(batch), a + n)) for a in range(0, len(batch), n)]


def _with_gap(batch: ImuBatch, t_s: float, n_lost: int) -> list[ImuBatch]:
    k = int(t_s * FS)
    rest = batch.slice(k + n_lost, len(batch))
    return [batch.slice(0, k), ImuBatch(t_s=rest.t_s, acc_mps2=rest.acc_mps2, gyr_rads=rest.gyr_rads,
                                        gap_before=True, n_lost=n_lost, time_base="session")]  # fmt: skip


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _alone_and_helped(chunks: list[ImuBatch]) -> tuple[GaitPipeline, GaitPipeline, bool]:
    """The chunks through a pipeline alone and through one given the helper's rows (which then adopts its
    stages); and whether the helper failed."""
    alone = GaitPipeline(FS)
    for c in chunks:
        alone.update(c)
    helped = GaitPipeline(FS)
    with motion_helper.MotionAhead(chunks, FS) as ahead:
        for c in chunks:
            helped.update(c, ahead.next())
        helped.adopt_motion_state(ahead.state())
        failed = ahead.helper_failed
    return alone, helped, failed


@pytest.fixture(scope="module")
def run_batch() -> ImuBatch:
    return simulate(SimParams(seconds=150.0, gait="run", seed=31)).batch


@needs_helper
@pytest.mark.parametrize("case", ["whole", "gaps", "no_gyro", "walk"])
def test_run_pipeline_with_the_helper_equals_one_process(run_batch, case, monkeypatch) -> None:
    """Every step field and the calibration: gap-free, with a restart and a bridged gap (the helper takes
    the part before the first, the pipeline adopts its stages), accelerometer only, walking; the helper
    ran to its end (its stand-in here would give the same)."""
    made = []
    init = motion_helper.MotionAhead.__init__

    def noting(self, *a, **k):
        init(self, *a, **k)
        made.append((self, self._pid))

    monkeypatch.setattr(motion_helper.MotionAhead, "__init__", noting)
    if case == "whole":
        batches = [run_batch]
    elif case == "gaps":
        first, rest = _with_gap(run_batch, 70.0, 400)  # restarts
        batches = [first, *_with_gap(rest, 40.0, 20)]  # bridged
    elif case == "no_gyro":
        batches = [ImuBatch(t_s=run_batch.t_s, acc_mps2=run_batch.acc_mps2, gyr_rads=None, time_base="session")]
    else:
        batches = [simulate(SimParams(seconds=120.0, gait="walk", seed=32)).batch]
    alone = run_pipeline(batches, FS, helper=False)
    assert not made
    helped = run_pipeline(batches, FS, helper=True)
    assert len(made) == 1 and made[0][1] is not None and not made[0][0].helper_failed
    assert len(alone.steps) > 150 and alone.calibration_state == "calibrated"
    assert repr(helped) == repr(alone)  # (repr: every float exactly, NaN as nan)


@needs_helper
@pytest.mark.parametrize("seconds", [30, 40])
def test_helper_events_and_a_moved_sensor_reach_the_pipeline(seconds: int) -> None:
    """Calibration changes and the re-check's MountMoved come from the helper, at their place in the events;
    the mounting found again after the move in the helper (40 s), or by the pipeline that adopted the
    helper's stages while they were still finding it (30 s; the move shows at 22.7 s, the mounting is found
    again 11 s later)."""
    b = simulate(SimParams(seconds=seconds, gait="run", cadence_spm=170, seed=22)).batch
    k = int(20 * FS)
    turn = Rotation.from_euler("z", 90, degrees=True)
    acc = np.vstack([b.acc_mps2[:k], turn.apply(b.acc_mps2[k:])])
    gyr = np.vstack([b.gyr_rads[:k], turn.apply(b.gyr_rads[k:])])
    turned = ImuBatch(t_s=b.t_s, acc_mps2=np.ascontiguousarray(acc), gyr_rads=np.ascontiguousarray(gyr),
                      time_base="session")  # fmt: skip
    params = PipelineParams(calibration=CalibrationParams(recheck_blocks=4))
    chunks = _chunks(turned, 700)
    alone = GaitPipeline(FS, params)
    want = [e for c in chunks for e in alone.update(c).events]
    helped = GaitPipeline(FS, params)
    with motion_helper.MotionAhead(chunks, FS, params) as ahead:
        pid = ahead._pid
        got = [e for c in chunks for e in helped.update(c, ahead.next()).events]
        helped.adopt_motion_state(ahead.state())
        assert not ahead.helper_failed
    assert pid is not None and _reaped(pid)
    assert sum(isinstance(e, MountMoved) for e in want) == 1
    states = [e.state for e in want if isinstance(e, CalibrationChange)]
    assert states[-2:] == (["recalibrating", "calibrated"] if seconds == 40 else ["calibrated", "recalibrating"])
    assert got == want
    assert repr(helped.steps_) == repr(alone.steps_)
    assert repr(helped.calibration_.save_state()) == repr(alone.calibration_.save_state())  # (NaN != NaN)
    # the adopted stages run on as the pipeline's own did
    tail = simulate(SimParams(seconds=10, gait="run", cadence_spm=170, seed=23)).batch
    tail = ImuBatch(t_s=tail.t_s + turned.t_s[-1] + 1 / FS, acc_mps2=turn.apply(tail.acc_mps2),
                    gyr_rads=turn.apply(tail.gyr_rads), time_base="session")  # fmt: skip
    out_h, out_a = helped.update(tail), alone.update(tail)
    assert repr(out_h.steps) == repr(out_a.steps) and out_h.events == out_a.events
    if seconds == 30:  # (found again in the tail)
        assert [e.state for e in out_a.events if isinstance(e, CalibrationChange)] == ["calibrated"]


@needs_helper
def test_a_helper_that_stops_early_is_caught_up_here(run_batch, monkeypatch) -> None:
    """The helper dies after two chunks: the rows come from this process, caught up from the first chunk."""

    def two_chunks_then_exit(self, fd, ack, slots):  # (runs in the forked child)
        pipe = self._new()
        with os.fdopen(fd, "wb") as out:
            import pickle

            for i in range(2):
                got = pipe.motion_rows(self._chunks[i], out=slots[i, :, : len(self._chunks[i])])
                pickle.dump(got.events, out)
        os._exit(3)

    monkeypatch.setattr(motion_helper.MotionAhead, "_serve", two_chunks_then_exit)
    alone, helped, failed = _alone_and_helped(_chunks(run_batch, 4096))
    assert failed
    assert len(alone.steps_) > 150 and repr(helped.steps_) == repr(alone.steps_)


@needs_helper
def test_an_interrupt_stops_and_reaps_the_helper(run_batch, monkeypatch) -> None:
    pids = []
    start = motion_helper.MotionAhead._start

    def start_and_note(self):
        start(self)
        pids.append(self._pid)

    calls = {"n": 0}
    update = GaitPipeline.update

    def interrupted(self, batch, motion=None):
        calls["n"] += 1
        if calls["n"] == 2:  # (150 s: two chunks of the pipeline)
            raise KeyboardInterrupt
        return update(self, batch, motion)

    monkeypatch.setattr(motion_helper.MotionAhead, "_start", start_and_note)
    monkeypatch.setattr(GaitPipeline, "update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline([run_batch], FS, helper=True)
    assert len(pids) == 1 and pids[0] is not None and _reaped(pids[0])


@needs_helper
def test_the_helper_waits_for_a_slow_parent(run_batch) -> None:
    """The helper is never more than SLOTS chunks ahead: no chunk's rows are overwritten before the parent
    took them (here the parent dawdles over each chunk)."""
    chunks = _chunks(run_batch.slice(0, 20000), 500)
    assert len(chunks) > 4 * motion_helper.SLOTS
    here = GaitPipeline(FS)
    want = [here.motion_rows(c).rows for c in chunks]
    with motion_helper.MotionAhead(chunks, FS) as ahead:
        got = []
        for _ in chunks:
            time.sleep(0.005)
            got.append(ahead.next().rows)
        assert not ahead.helper_failed
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, want, strict=True))
    assert np.isfinite(want[-1]).any()  # (calibrated by then: the rows hold angles)


@needs_helper
def test_the_helper_ends_with_its_state_or_when_dropped(run_batch) -> None:
    chunks = _chunks(run_batch.slice(0, 8000), 2000)
    ahead = motion_helper.MotionAhead(chunks, FS)
    pid = ahead._pid
    for _ in chunks:
        ahead.next()
    ahead.state()
    assert pid is not None and _reaped(pid)  # (reaped as soon as its work is done)
    ahead = motion_helper.MotionAhead(chunks, FS)
    pid = ahead._pid
    ahead.next()
    del ahead  # (never closed: it must not wait for the parent's word forever)
    assert pid is not None and _reaped(pid)


def test_a_helper_that_cannot_start_leaves_the_rows_here(run_batch, monkeypatch) -> None:
    """Out of file descriptors at the second pipe: no helper, nothing left open, the same rows."""
    chunks = _chunks(run_batch.slice(0, 6000), 2000)
    made = []
    pipe = os.pipe

    def second_fails():
        if made:
            raise OSError(24, "Too many open files")
        made.append(pipe())
        return made[-1]

    monkeypatch.setattr(motion_helper.os, "pipe", second_fails)
    with motion_helper.MotionAhead(chunks, FS) as ahead:
        assert ahead._pid is None
        got = [ahead.next().rows for _ in chunks]
    for fd in made[0]:
        with pytest.raises(OSError):
            os.fstat(fd)  # (closed)
    here = GaitPipeline(FS)
    assert all(np.array_equal(a, here.motion_rows(c).rows, equal_nan=True) for a, c in zip(got, chunks, strict=True))


def test_without_the_helper_the_rows_are_computed_here(run_batch) -> None:
    chunks = _chunks(run_batch, 5000)
    alone = GaitPipeline(FS)
    for c in chunks:
        alone.update(c)
    here = GaitPipeline(FS)
    with motion_helper.MotionAhead(chunks, FS, helper=False) as ahead:
        assert ahead._pid is None
        for c in chunks:
            here.update(c, ahead.next())
        with pytest.raises(IndexError):
            ahead.next()
        here.adopt_motion_state(ahead.state())
    assert repr(here.steps_) == repr(alone.steps_)


def test_the_helper_takes_the_chunks_before_the_first_gap(run_batch) -> None:
    first, rest = _with_gap(run_batch, 30.0, 40)
    chunks = [*_chunks(first, 3000), *_chunks(rest, 3000)]
    assert motion_helper.ahead_prefix(chunks) == len(_chunks(first, 3000))
    assert motion_helper.ahead_prefix(_chunks(first, 3000)) == len(_chunks(first, 3000))


def test_motion_rows_for_another_chunk_or_after_a_gap_are_refused(run_batch) -> None:
    first, rest = _with_gap(run_batch, 30.0, 40)
    ahead = GaitPipeline(FS)
    rows = ahead.motion_rows(first.slice(0, 1000))
    pipe = GaitPipeline(FS)
    with pytest.raises(ValueError, match="another chunk"):
        pipe.update(first.slice(0, 999), rows)
    pipe.update(first.slice(0, 1000), rows)
    with pytest.raises(ValueError, match="after a gap"):
        pipe.update(rest, GaitPipeline(FS).motion_rows(rest))  # (rows of the right length)
    with pytest.raises(ValueError, match="without a gap"):
        ahead.motion_rows(rest)


@needs_helper
def test_the_recheck_means_run_on_after_the_pipeline_adopts_the_helpers_stages(run_batch) -> None:
    """The helper's part ends at a restart, in the middle of the re-check's means of samples: the pipeline
    takes over the open mean with the stages and runs on as one that did it all (the same calibration
    state after a further minute, bit for bit)."""
    first, rest = _with_gap(run_batch, 70.0 + 3.0 / FS, 400)  # (70 s and 3 samples: a mean of 4 is open)
    later = _chunks(rest, 1000)
    alone, helped, failed = _alone_and_helped(_chunks(first, 1000))
    assert not failed
    assert helped._rc_on and helped._rc_carry[2] > 0  # (the re-check reads means; one is open here)
    for c in later:
        alone.update(c)
        helped.update(c)
    assert repr(helped.calibration_.save_state()) == repr(alone.calibration_.save_state())
    assert repr(helped.steps_) == repr(alone.steps_)
