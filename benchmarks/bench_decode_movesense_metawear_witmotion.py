"""Decoding throughput of the Movesense, MetaWear and WitMotion decoders.

For each protocol the device model encodes the same simulated minute of IMU data into real notification
bytes (Movesense IMU6 at 104 Hz: 8 samples per DATA + DATA_PART2; MetaWear packed acc and gyro at 100 Hz:
3 samples per notification; WitMotion 0x61 frames at 100 Hz, one and four per notification). The script
then times ``Decoder.feed`` over every notification, and, as a same-run baseline, a bare
``np.frombuffer`` of the sample bytes of each notification (no framing checks, no scaling, no batch
objects). It prints decoded samples per second, the baseline, and their ratio.

Usage: python benchmarks/bench_decode_movesense_metawear_witmotion.py [--seconds S] [--repeat R]
"""

from __future__ import annotations

import argparse

import numpy as np
from _bench import best_of, simulated

from pelvimon.firmware_protocols import metawear as mw
from pelvimon.firmware_protocols import movesense as ms
from pelvimon.firmware_protocols import witmotion as wm
from pelvimon.firmware_protocols.base import StreamConfig


def case_movesense(seconds: float):
    dev = ms.PROTOCOL.peripheral()
    dev.handle_write(ms.COMMAND_UUID, ms.subscribe_command("/Meas/IMU6/104"))
    msgs = dev.encode(simulated(seconds, 104.0))

    def decode() -> int:
        dec = ms.PROTOCOL.decoder(path="/Meas/IMU6/104")
        return sum(len(b) for c, m in msgs for b in dec.feed(c, m, 0.0))

    def baseline() -> int:
        n, part = 0, b""
        for _, m in msgs:  # the same reassembly by hand, then a bare frombuffer
            if m[0] == 2:
                part = m[2:]
                continue
            n += np.frombuffer(part + m[2:], dtype="<f4", offset=4).size // 6
        return n

    return "movesense IMU6 104 Hz", len(msgs), decode, baseline


def case_metawear(seconds: float):
    proto = mw.PROTOCOL
    dev = proto.peripheral()
    for w in proto.start_sequence(StreamConfig(rate_hz=100.0)):
        dev.handle_write(w.char_uuid, w.data)
    msgs = dev.encode(simulated(seconds, 100.0))

    def decode() -> int:
        dec = proto.decoder()
        return sum(len(b) for i, (c, m) in enumerate(msgs) for b in dec.feed(c, m, i * 0.01))

    def baseline() -> int:
        return sum(np.frombuffer(m, dtype="<i2", offset=2).size // 3 for _, m in msgs)

    return "metawear packed acc+gyro 100 Hz", len(msgs), decode, baseline


def case_witmotion(seconds: float, per_note: int):
    dev = wm.PROTOCOL.peripheral(frames_per_notification=per_note)
    msgs = dev.encode(simulated(seconds, 100.0))

    def decode() -> int:
        dec = wm.PROTOCOL.decoder(rate_hz=100.0)
        return sum(len(b) for i, (c, m) in enumerate(msgs) for b in dec.feed(c, m, i * 0.01))

    def baseline() -> int:
        return sum(np.frombuffer(m, dtype="<i2").size // 10 for _, m in msgs)

    return f"witmotion 0x61 100 Hz, {per_note} frame(s)/notification", len(msgs), decode, baseline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="simulated seconds per protocol (default 60)")
    ap.add_argument("--repeat", type=int, default=5, help="timing repeats, best kept (default 5)")
    args = ap.parse_args()
    cases = [
        case_movesense(args.seconds),
        case_metawear(args.seconds),
        case_witmotion(args.seconds, 1),
        case_witmotion(args.seconds, 4),
    ]
    print(
        f"{'protocol':<46} {'notif.':>7} {'samples':>8} {'decode S/s':>12} {'frombuffer S/s':>15} {'ratio':>6}"
    )
    for name, n_msgs, decode, baseline in cases:
        t_dec, n_dec = best_of(args.repeat, decode)
        t_base, n_base = best_of(args.repeat, baseline)
        if n_dec != n_base:
            raise SystemExit(f"{name}: decoder gave {n_dec} samples, baseline {n_base}")
        rate_dec, rate_base = n_dec / t_dec, n_base / t_base
        print(
            f"{name:<46} {n_msgs:>7} {n_dec:>8} {rate_dec:>12,.0f} {rate_base:>15,.0f} {rate_base / rate_dec:>5.1f}x"
        )
    print("ratio = baseline speed / decoder speed (how much the checks, scaling and ImuBatch objects cost)")


if __name__ == "__main__":
    main()
