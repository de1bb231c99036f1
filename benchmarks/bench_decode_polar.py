"""Decoding throughput of the Polar PMD decoder (delta-compressed ACC 0x81 and GYRO 0x80 frames).

The Verity Sense device model encodes a simulated stretch of running (acc and gyro at 104 Hz, 16 bit,
frames filled up to MTU-3 = 229 bytes as the device does) into real PMD data notifications. The script
times ``Decoder.feed`` over every frame of each stream, and, as same-run baselines over the same frames:

- ``np.frombuffer`` of as many raw int16 samples as the frame holds (the cost of reading uncompressed
  samples, no framing, no scaling, no batch objects);
- the decoder on raw ACC type 0x01 frames (int16 mG, the H10 format) holding the same samples.

It prints decoded samples per second, the baselines and the ratios.

Usage: python benchmarks/bench_decode_polar.py [--seconds S] [--repeat R] [--rate HZ]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from _bench import best_of, simulated

from pelvimon.firmware_protocols import polar_pmd as pmd
from pelvimon.firmware_protocols.base import StreamConfig

T0_S = 830_000_000.0  # device clock, s since 2000


def frames(
    seconds: float, rate_hz: float
) -> tuple[list[bytes], list[bytes], list[tuple[str, bytes]], StreamConfig]:
    config = StreamConfig(rate_hz=rate_hz)
    dev = pmd.PROTOCOL.peripheral()
    cp: list[tuple[str, bytes]] = []
    for w in pmd.PROTOCOL.start_sequence(config):
        cp += dev.handle_write(w.char_uuid, w.data)
    notes = dev.encode(simulated(seconds, rate_hz, t0_s=T0_S, noise=True)) + dev.flush()
    acc = [m for _, m in notes if m[0] == pmd.MeasurementType.ACC]
    gyr = [m for _, m in notes if m[0] == pmd.MeasurementType.GYRO]
    return acc, gyr, cp, config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="simulated seconds (default 600)")
    ap.add_argument("--repeat", type=int, default=3, help="timing repeats, best kept (default 3)")
    ap.add_argument("--rate", type=float, default=104.0, help="sample rate in Hz (default 104)")
    args = ap.parse_args()

    acc, gyr, cp, config = frames(args.seconds, args.rate)

    def decoder() -> pmd.PmdDecoder:
        dec = pmd.PROTOCOL.decoder(config=config)
        for c, m in cp:
            dec.feed(c, m)
        return dec

    def decode(msgs: list[bytes]) -> Callable[[], int]:
        def run() -> int:
            dec = decoder()
            return sum(len(b) for m in msgs for b in dec.feed(pmd.DATA_UUID, m))

        return run

    counts = {
        "acc": [len(pmd.parse_delta_frame(m[10:], 3, 16)) for m in acc],
        "gyr": [len(pmd.parse_delta_frame(m[10:], 3, 16)) for m in gyr],
    }

    def frombuffer(msgs: list[bytes], n_per: list[int]) -> Callable[[], int]:
        raw = [np.zeros(n * 6, np.uint8).tobytes() for n in n_per]

        def run() -> int:
            return sum(np.frombuffer(r, dtype="<i2").reshape(-1, 3).shape[0] for r in raw)

        return run

    def raw_frames(n_per: list[int]) -> list[bytes]:
        out, ts = [], 1_000_000_000_000
        for n in n_per:
            ts += round(n * 1e9 / args.rate)
            out.append(bytes((2,)) + ts.to_bytes(8, "little") + b"\x01" + np.zeros(n * 6, np.uint8).tobytes())
        return out

    mean_size = np.mean([len(m) for m in acc + gyr])
    print(
        f"Polar PMD, {args.seconds:.0f} s at {args.rate:.0f} Hz: {len(acc)} ACC + {len(gyr)} GYRO frames, "
        f"mean {mean_size:.0f} bytes, mean {np.mean(counts['acc'] + counts['gyr']):.1f} samples/frame"
    )
    print(f"{'case':<34}{'samples/s':>14}{'vs frombuffer':>16}")
    for name, msgs in (("acc", acc), ("gyr", gyr)):
        t_dec, n_dec = best_of(args.repeat, decode(msgs))
        t_fb, n_fb = best_of(args.repeat, frombuffer(msgs, counts[name]))
        label = "ACC 0x81 delta" if name == "acc" else "GYRO 0x80 delta"
        print(
            f"{label + ' (Decoder.feed)':<34}{n_dec / t_dec:>14,.0f}{(n_dec / t_dec) / (n_fb / t_fb):>15.3f}x"
        )
        print(f"{'  baseline np.frombuffer int16':<34}{n_fb / t_fb:>14,.0f}{1.0:>15.3f}x")
    t_raw, n_raw = best_of(args.repeat, decode(raw_frames(counts["acc"])))
    t_fb, n_fb = best_of(args.repeat, frombuffer(acc, counts["acc"]))
    print(
        f"{'ACC 0x01 raw int16 (Decoder.feed)':<34}{n_raw / t_raw:>14,.0f}{(n_raw / t_raw) / (n_fb / t_fb):>15.3f}x"
    )
    real_time = args.rate * 2
    print(f"real time needs {real_time:,.0f} samples/s (acc + gyro at {args.rate:.0f} Hz)")


if __name__ == "__main__":
    main()
