"""Replay a recorded session as a :class:`~pelvimon.sensors.source.Source`.

Sessions recorded from a BLE sensor (real or emulated) replay their raw notifications through the very
decoding stage the live source used (:class:`~pelvimon.sensors.ble.StreamDecoder`: protocol decoder, device
clock -> session time, acc/gyro merge, gap detection), following the recorded connection events, so the
samples come out identical to the ones seen live. Sessions without raw notifications (simulator, CSV
import) replay their recorded samples.

Where the reader skipped damaged parts of the file it inserts a ``gap`` status (``details[FILE_DAMAGE]``):
replaying recorded samples passes it on (its ``n_lost`` is the reader's estimate from the time jump), and
flags the batch after any hole in the samples' times;
decoding again marks the stream as interrupted there, so the decoding stage counts the loss itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from pelvimon.dsp.records import Step
from pelvimon.firmware_protocols import registry
from pelvimon.firmware_protocols.base import Protocol
from pelvimon.firmware_protocols.batch import ImuBatch, median_rate_hz, span_rate_hz

from .session_file import FILE_DAMAGE, SessionItem, SessionReader
from .source import RawNotification, Source, SourceEvent, SourceInfo, SourceStatus, samples_missing

log = logging.getLogger(__name__)


def _item_time(item: SessionItem) -> float | None:
    if isinstance(item, RawNotification):
        return item.t_host_s
    if isinstance(item, ImuBatch):
        return float(item.t_s[-1]) if len(item) else None
    if isinstance(item, SourceStatus):
        return item.t_s
    return None


UNFLAGGED_JUMP_S = 0.5
"""A recorded batch starting this much after the last sample without a gap flag still follows lost samples,
s: the file lost a damaged part (a zeroed disk page, or a chunk its index does not list), or the recording
was paused."""


def _recorded_events(items: Iterator[SessionItem], rate_hz: float | None) -> Iterator[SourceEvent]:
    """The recorded samples and statuses, each batch that starts over :data:`UNFLAGGED_JUMP_S` after the
    last sample without a gap flag given one (and the missing sample periods): no step is then computed
    across the hole (a 12 s hole made one 12 s step)."""
    t_last = math.nan
    for item in items:
        if isinstance(item, ImuBatch) and len(item):
            jump = float(item.t_s[0]) - t_last
            if not item.gap_before and jump > UNFLAGGED_JUMP_S:
                n_lost = samples_missing(jump, rate_hz) if rate_hz else 1
                item = dataclasses.replace(item, gap_before=True, n_lost=max(1, n_lost))
            t_last = float(item.t_s[-1])
        if isinstance(item, (RawNotification, ImuBatch, SourceStatus)):
            yield item


STATED_RATE_FACTOR = 2.0
"""A session file's stated rate is believed unless the median interval of its first recorded samples says
a rate this many times higher or lower (or it states none): a damaged header (20 Hz stated over 200 Hz
samples gave 2 steps where there were 41; 1e9 Hz asked replay for 405 GiB). The recorded times of a
healthy file can read a fifth off the stated rate over its first second (the session clock slews after a
delivery stall), so a smaller factor would take a sound header for a damaged one."""


class ReplaySource(Source):
    """A recorded session, replayed.

    Parameters
    ----------
    path : str or Path
        Session file (``.mcap``).
    speed : float
        0 (default) replays as fast as possible; 1.0 at the recorded pace; 2.0 twice as fast.
    redecode : bool or None
        Decode the raw notifications again (default: whenever the session has a known protocol);
        False replays the recorded samples.
    keep_steps : bool
        Keep the steps the session recorded live in :attr:`recorded_steps` as the replay passes them (they
        are results, not replayed): a review shows them without reading the file again.
    """

    def __init__(
        self, path: str | Path, *, speed: float = 0.0, redecode: bool | None = None, keep_steps: bool = False
    ) -> None:
        if speed < 0:
            raise ValueError(f"replay speed must be >= 0 (0 = as fast as possible), got {speed}")
        self.path = Path(path)
        self.speed = float(speed)
        self.reader = SessionReader(self.path)
        src = self.reader.header.source
        rate = float(src.rate_hz)
        first = self._first_batches()
        stamped = median_rate_hz(first)
        if stamped is not None and not (rate > 0 and 1 / STATED_RATE_FACTOR <= stamped / rate <= STATED_RATE_FACTOR):
            stamped = span_rate_hz(first) or stamped  # (the rate, once the median has said the header is wrong)
            if rate > 0:
                log.warning("%s: its header says the samples come at %.4g Hz, but their time stamps give %.4g Hz; "
                            "read at %.4g Hz (the header is damaged)", self.path, rate, stamped, stamped)
            rate = stamped
        self.info = SourceInfo(
            name=src.name,
            protocol=src.protocol,
            rate_hz=rate,
            has_gyro=src.has_gyro,
            address=str(self.path),
            metadata={**src.metadata, "replay_of": str(self.path), "recorded_address": src.address},
        )
        self.protocol: Protocol | None = None
        if redecode is not False and src.protocol in registry.available():
            self.protocol = registry.get(src.protocol)
            why = self._decoder_settings_damage()
            if why is None and stamped is not None and not self._raw_first:
                why = "its samples were recorded without the raw notifications they came from"
            if why is not None:
                if redecode:
                    raise ValueError(f"{self.path}: cannot decode again: {why}")
                log.warning("%s: %s; its recorded samples are replayed instead", self.path, why)
                self.protocol = None
        elif redecode:
            raise ValueError(f"{self.path}: cannot decode again: protocol {src.protocol!r} is not supported")
        self.n_items = 0
        self.keep_steps = keep_steps
        self.recorded_steps: list[Step] = []

    def _decoder_settings_damage(self) -> str | None:
        """What is wrong with the decoder settings the header records (None if nothing): the decoder context
        and the start writes the raw notifications are decoded with."""
        assert self.protocol is not None
        ctx = self.info.metadata.get("decoder_context") or {}
        try:
            if not isinstance(ctx, dict):
                raise TypeError("not a mapping")
            self.protocol.decoder(**ctx)
            self._start_writes()
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            return f"the decoder settings its header records are damaged ({exc})"
        return None

    def _first_batches(self, n: int = 1000, max_items: int = 5000) -> list[ImuBatch]:
        """The recorded batches of the first ``n`` or so samples, read from at most ``max_items`` items at the
        start of the file (for the rate of their time stamps)."""
        batches: list[ImuBatch] = []
        self._raw_first = False
        for k, item in enumerate(self.reader.items(warn=False)):  # (the replay itself says what is damaged)
            if isinstance(item, RawNotification) and not batches:
                self._raw_first = True  # (a recording's raw notifications come before the samples decoded from them)
            if isinstance(item, ImuBatch) and len(item):
                batches.append(item)
            if sum(len(b) for b in batches) >= n or k >= max_items:
                break
        return batches

    @property
    def redecoding(self) -> bool:
        return self.protocol is not None

    def _start_writes(self) -> list[tuple[str, bytes]]:
        writes = self.info.metadata.get("start_writes") or []
        return [(str(w[0]).lower(), bytes.fromhex(w[1])) for w in writes]

    def _events_sync(self) -> Iterator[SourceEvent]:
        """The replayed events, without pacing."""
        items = self._items()
        if self.protocol is None:
            yield from _recorded_events(items, self.info.rate_hz)
            return

        from .ble import StreamDecoder

        stream = StreamDecoder(self.protocol, dict(self.info.metadata.get("decoder_context") or {}), self.info.rate_hz)
        writes = self._start_writes()
        writes_due = True  # the live client wrote its start sequence before the first notification
        pending: SessionItem | None = None
        it = iter(items)
        while True:
            item: SessionItem | None = pending if pending is not None else next(it, None)
            pending = None
            if item is None:
                return
            if isinstance(item, RawNotification):
                if writes_due:
                    for char_uuid, data in writes:
                        stream.observe_write(char_uuid, data)
                    writes_due = False
                yield item
                # live: a "consumer too slow" status between a notification and its decoding marks a gap
                nxt = next(it, None)
                if isinstance(nxt, SourceStatus) and nxt.kind == "info" and "queue_dropped" in nxt.details:
                    stream.gap_pending = True
                    yield nxt
                else:
                    pending = nxt
                yield from stream.feed(item)
            elif isinstance(item, SourceStatus):
                if item.details.get(FILE_DAMAGE):
                    # the reader skipped damaged data here: notifications are missing, as when the live queue
                    # dropped some; the decoding stage counts the loss (device clock, counter or receive times)
                    stream.gap_pending = True
                    continue
                if item.kind == "gap" or (item.kind == "info" and "n_malformed" in item.details):
                    continue  # made again by the decoding stage
                if item.kind == "disconnected":
                    stream.reset()
                    writes_due = True
                yield item
            # recorded ImuBatches are made again from the raw notifications; steps, alerts, calibration
            # and device records are results, not inputs

    def _items(self) -> Iterator[SessionItem]:
        """The file's items, the recorded steps kept on the way when asked."""
        for item in self.reader.items():
            if self.keep_steps and isinstance(item, Step):
                self.recorded_steps.append(item)
            yield item

    async def events(self) -> AsyncIterator[SourceEvent]:
        t0_wall = time.monotonic()
        t0_data: float | None = None
        for n, ev in enumerate(self._events_sync()):
            self.n_items = n + 1
            if self.speed > 0:
                t = _item_time(ev)
                if t is not None:
                    if t0_data is None:
                        t0_data = t
                    delay = (t - t0_data) / self.speed - (time.monotonic() - t0_wall)
                    if delay > 0:
                        await asyncio.sleep(delay)
            elif n % 256 == 255:
                await asyncio.sleep(0)  # let other tasks (GUI feeders, stop requests) run
            yield ev
