"""Decoding throughput of the Movella DOT and pelvimon reference protocol decoders.

Prints decoded samples per second for each decoder path next to a baseline measured in the same run: bare
``np.frombuffer`` over the same notifications (per notification, the floor of any per-notification decoder,
and in bulk over all bytes at once), and the ratio decoder / baseline.

Run: ``/work/venv/bin/python benchmarks/bench_decode_dot_ref.py [--seconds 600]``
"""

from __future__ import annotations

import argparse

import numpy as np
from _bench import best_of

from pelvimon.firmware_protocols import movella_dot as md
from pelvimon.firmware_protocols import pelvimon_ref as pr
from pelvimon.firmware_protocols.base import StreamConfig
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch


def _samples(n: int, rate_hz: float) -> ImuBatch:
    rng = np.random.default_rng(0)
    t = 10.0 + np.arange(n) / rate_hz
    acc = rng.normal(0, 5, (n, 3)) + [0, 0, G_MPS2]
    gyr = rng.normal(0, 2, (n, 3))
    return ImuBatch(t_s=t, acc_mps2=acc, gyr_rads=gyr)


def _row(label: str, n: int, seconds: float, base: float | None = None) -> None:
    rate = n / seconds
    ratio = "" if base is None else f"   {seconds / base:6.2f} x baseline time"
    print(f"  {label:<56} {rate / 1e6:9.3f} M samples/s{ratio}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="recording length to decode (default 600 s)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    # Movella DOT, payload mode 21 at 60 Hz: one 40-byte notification per sample.
    n = int(args.seconds * 60)
    per = md.PROTOCOL.peripheral()
    for w in md.PROTOCOL.start_sequence(StreamConfig(rate_hz=60.0)):
        per.handle_write(w.char_uuid, w.data)
    notes = [p for _, p in per.encode(_samples(n, 60.0))]
    joined = b"".join(notes)
    rec = np.dtype({"names": ["ts", "acc", "gyr"], "formats": ["<u4", "<3f4", "<3f4"],
                    "offsets": [0, 4, 16], "itemsize": 40})  # fmt: skip

    def unpack(buf: bytes) -> tuple[np.ndarray, ...]:
        r = np.frombuffer(buf, dtype=rec)
        return r["ts"].astype(np.int64), r["acc"].astype(np.float64), np.deg2rad(r["gyr"].astype(np.float64))

    def dot_base_each() -> None:
        for p in notes:
            unpack(p)

    def dot_feed() -> None:
        dec = md.PROTOCOL.decoder()
        for p in notes:
            dec.feed(md.MEDIUM_PAYLOAD_UUID, p)

    def dot_feed_many() -> None:
        md.PROTOCOL.decoder().feed_many(md.MEDIUM_PAYLOAD_UUID, notes)

    print(f"Movella DOT, mode 21, 60 Hz, {n} notifications of 40 bytes (1 sample each)")
    b_each = best_of(args.repeat, dot_base_each)[0]
    b_bulk = best_of(args.repeat, lambda: unpack(joined))[0]
    _row("baseline: np.frombuffer -> float64 per notification", n, b_each)
    _row("baseline: np.frombuffer -> float64, all bytes at once", n, b_bulk)
    _row("DotDecoder.feed per notification", n, best_of(args.repeat, dot_feed)[0], b_each)
    _row("DotDecoder.feed_many (replay path)", n, best_of(args.repeat, dot_feed_many)[0], b_bulk)

    # pelvimon reference protocol, IMU6 at 200 Hz, MTU 247: 19 samples per 241-byte notification.
    n = int(args.seconds * 200)
    per = pr.PROTOCOL.peripheral()
    replies = [
        p
        for w in pr.PROTOCOL.start_sequence(StreamConfig(rate_hz=200.0))
        for _, p in per.handle_write(w.char_uuid, w.data)
    ]
    frames = [p for _, p in per.encode(_samples(n, 200.0))]
    m = sum((len(f) - pr.DATA_HEADER) // 12 for f in frames)

    def ref_base_each() -> None:
        for f in frames:
            np.frombuffer(f, dtype="<i2", offset=pr.DATA_HEADER).reshape(-1, 6) * 1.0

    def ref_feed() -> None:
        dec = pr.PROTOCOL.decoder()
        for r in replies:
            dec.feed(pr.TX_UUID, r)
        for f in frames:
            dec.feed(pr.TX_UUID, f)

    print(f"\npelvimon reference protocol, IMU6, 200 Hz, {len(frames)} notifications, {m} samples")
    b_each = best_of(args.repeat, ref_base_each)[0]
    _row("baseline: np.frombuffer + scale per notification", m, b_each)
    _row("PelvimonDecoder.feed per notification", m, best_of(args.repeat, ref_feed)[0], b_each)
    hours = args.seconds / 3600
    print(
        f"\n(decoding {args.seconds:g} s of recording = {hours:.3g} h; real time needs 60 and 200 samples/s)"
    )


if __name__ == "__main__":
    main()
