"""``pelvimon simulate``: a simulated sacral-IMU session as CSV, with its truth as JSON."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from pelvimon.commands import _guards
from pelvimon.errors import UsageError
from pelvimon.file_kinds import TRUTH_FORMAT, is_session_file

if TYPE_CHECKING:
    from pelvimon.sensors.simulator import SimParams

NAME = "simulate"
ORDER = 80
HELP = "simulate a runner's sacral IMU (CSV samples + JSON truth)"
DESCRIPTION = (
    "Simulate one IMU at the sacrum of a runner (or walker) on a treadmill: standing still first, then a "
    "ramp into steps with known cadence, contralateral pelvic drop per side, tilt, rotation and mounting "
    "rotation, with realistic sensor noise and bias. Writes the design's CSV columns (t_s, acc_*_mps2, "
    "gyr_*_rads) and, with --truth, the per-step and per-sample truth as JSON. See docs/simulator.md."
)

# SimParams field -> command-line option, to phrase parameter errors in the user's terms
_OPTION = {
    "seconds": "--seconds",
    "rate_hz": "--rate",
    "cadence_spm": "--cadence",
    "cpd_left_deg": "--cpd-left",
    "cpd_right_deg": "--cpd-right",
    "tilt_range_deg": "--tilt-range",
    "rotation_range_deg": "--rotation-range",
    "contact_time_s": "--contact-time",
    "step_time_asymmetry_pct": "--step-time-asymmetry",
    "mount_euler_deg": "--mount-euler-deg",
    "stand_s": "--stand",
    "end_stand_s": "--end-stand",
    "first_side": "--first-side",
    "gait": "--gait",
    "seed": "--seed",
    "tilt_offset_deg": "--tilt-offset",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    num = _guards.finite_float  # nan and inf refused here; the ranges are SimParams' (named by _OPTION)
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="CSV", help="write the samples to this CSV file")
    out.add_argument(
        "--truth", metavar="JSON", help="write the truth (steps, angles, mount) as JSON"
    )
    g = parser.add_argument_group("session")
    g.add_argument(
        "--seconds", type=num, default=60.0, help="length in s, standing part included (default 60)"
    )
    g.add_argument(
        "--rate", type=_guards.rate_hz, default=200.0, help="sample rate in Hz, 20-2000 (default 200)"
    )
    g.add_argument(
        "--gait", choices=("run", "walk"), default="run", help="run (flight) or walk (default run)"
    )
    g.add_argument(
        "--stand", type=num, default=5.0, metavar="S", help="standing still at the start, s (default 5)"
    )
    g.add_argument(
        "--end-stand", type=num, default=0.0, metavar="S",
        help="standing still at the end, s; the gait ramps down before it (default 0)",
    )
    g.add_argument(
        "--then", action="append", default=[], metavar="GAIT:SECONDS[:SPM]",
        help="another bout after this one (repeatable), e.g. --then run:300 --then walk:60: same runner and "
        "sensor, its own gait, length and cadence (default: the gait's); standing --pause s between bouts",
    )
    g.add_argument(
        "--pause", type=num, default=6.0, metavar="S", help="standing between bouts, s (default 6)"
    )
    g.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    m = parser.add_argument_group("runner")
    m.add_argument(
        "--cadence", type=num, metavar="SPM", help="steps/min, 60..240 (default run 170, walk 110)"
    )
    m.add_argument(
        "--cpd-left", type=num, default=6.0, metavar="DEG", help="pelvic drop in LEFT stance (default 6)"
    )
    m.add_argument(
        "--cpd-right", type=num, default=6.0, metavar="DEG", help="pelvic drop in RIGHT stance (default 6)"
    )
    m.add_argument(
        "--tilt-range", type=num, default=6.0, metavar="DEG", help="tilt peak-to-peak per step (default 6)"
    )
    m.add_argument(
        "--tilt-offset",
        type=num,
        default=10.0,
        metavar="DEG",
        help="static anterior pelvic tilt (default 10)",
    )
    m.add_argument(
        "--rotation-range",
        type=num,
        default=12.0,
        metavar="DEG",
        help="rotation peak-to-peak per stride (default 12)",
    )
    m.add_argument(
        "--contact-time",
        type=num,
        metavar="S",
        help="ground contact per foot, s (default: 0.70 x the step time running, 1.20 x walking; a limping walk: "
        "the feet's mean, each its own step time plus the same double support)",
    )
    m.add_argument(
        "--step-time-asymmetry",
        type=num,
        default=0.0,
        metavar="PCT",
        help="100 (T_left - T_right) / mean step time (default 0)",
    )
    m.add_argument(
        "--first-side", choices=("L", "R"), default="L", help="stance side of the first step (default L)"
    )
    s = parser.add_argument_group("sensor")
    s.add_argument(
        "--mount-euler-deg",
        type=num,
        nargs=3,
        default=(0.0, 0.0, 0.0),
        metavar=("X", "Y", "Z"),
        help="sensor->pelvis rotation, scipy Rotation.from_euler('xyz', [X, Y, Z], degrees=True) (default 0 0 0)",
    )
    s.add_argument("--no-noise", action="store_true", help="no sensor errors (noise, bias, scale, jitter)")
    s.add_argument(
        "--no-variability", action="store_true", help="identical steps (no step-to-step variability)"
    )
    s.add_argument("--ideal", action="store_true", help="both --no-noise and --no-variability")


def _then(text: str) -> tuple[str, float, float | None]:
    """``GAIT:SECONDS[:SPM]`` of ``--then``."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3) or parts[0] not in ("run", "walk"):
            raise ValueError
        return parts[0], float(parts[1]), float(parts[2]) if len(parts) == 3 else None
    except ValueError:
        raise UsageError(f"--then {text!r}: give GAIT:SECONDS[:SPM] with GAIT run or walk, e.g. run:300") from None


def _bouts(args: argparse.Namespace) -> list[SimParams]:
    """The bouts of the session: the options' own, then one per ``--then``."""
    from pelvimon.sensors.simulator import SimParams, SimParamsError

    then = [_then(t) for t in args.then]
    if then and not args.pause > 0:
        raise UsageError(f"--pause must be > 0 s between bouts, got {args.pause:g}")
    half = args.pause / 2.0
    n = 1 + len(then)
    first = (args.gait, args.seconds, args.cadence)
    out = []
    for i, (gait, seconds, cadence) in enumerate([first, *then]):
        try:
            out.append(SimParams(
                seconds=seconds,
                rate_hz=args.rate,
                gait=gait,
                cadence_spm=cadence,
                cpd_left_deg=args.cpd_left,
                cpd_right_deg=args.cpd_right,
                tilt_range_deg=args.tilt_range,
                rotation_range_deg=args.rotation_range,
                contact_time_s=args.contact_time if i == 0 else None,
                step_time_asymmetry_pct=args.step_time_asymmetry,
                mount_euler_deg=tuple(args.mount_euler_deg),
                stand_s=args.stand if i == 0 else half,
                end_stand_s=args.end_stand if i == n - 1 else half,
                first_side=args.first_side,
                tilt_offset_deg=args.tilt_offset,
                errors=not (args.no_noise or args.ideal),
                variability=not (args.no_variability or args.ideal),
                seed=args.seed + i,
            ))
        except SimParamsError as exc:
            msg = str(exc)
            # a later bout's own length and cadence are the SECONDS and SPM of its --then; the standing
            # between two bouts is half of --pause on each side
            names = dict(_OPTION) if i == 0 else {**_OPTION, "seconds": "SECONDS", "cadence_spm": "SPM"}
            if i > 0:
                names["stand_s"] = "half of --pause"
            if i < n - 1:
                names["end_stand_s"] = "half of --pause"
            for field, option in names.items():
                msg = re.sub(rf"(?<![-\w]){field}\b", option, msg)
            raise UsageError(msg if i == 0 else f"--then {args.then[i - 1]}: {msg}") from None
    return out


def run(args: argparse.Namespace) -> int:
    import json

    from pelvimon.outputs import write_output
    from pelvimon.sensors.csv_source import format_imu_csv
    from pelvimon.sensors.simulator import simulate, simulate_session

    bouts = _bouts(args)
    params = bouts[0]
    outs = _guards.check_outputs({"-o/--output": args.output, "--truth": args.truth}, (), {"--truth": TRUTH_FORMAT})
    if args.output is not None and is_session_file(args.output):  # (an existing one was refused above)
        raise UsageError(
            f"-o {args.output}: simulate writes CSV samples; give a name ending in .csv (a session file is "
            "recorded by 'pelvimon demo' or 'pelvimon record --sensor emulated:...')"
        )
    output, truth = outs["-o/--output"], outs["--truth"]
    sim = simulate(params) if len(bouts) == 1 else simulate_session(bouts)
    written = []
    if output is not None:
        written.append(str(write_output(output, format_imu_csv(sim.batch))))
    if truth is not None:
        written.append(str(write_output(truth, json.dumps(sim.truth.to_json(), separators=(",", ":")))))

    if not args.quiet:
        steps = sim.truth.steps
        full = [st for st in steps if st.ramp == 1.0] or steps
        n_l = sum(st.side == "L" for st in steps)

        def mean(values: list[float]) -> float:
            return sum(values) / len(values) if values else float("nan")

        cpd_l = mean([st.cpd_deg for st in full if st.side == "L"])
        cpd_r = mean([st.cpd_deg for st in full if st.side == "R"])
        # cadence per bout (a session of bouts mixes walking and running)
        cads, t0 = [], 0.0
        for b in bouts:
            inside = [st.step_time_s for st in full if t0 <= st.t_ic_s < t0 + b.seconds]
            cads.append(f"{60.0 / mean(inside):.1f}" if inside else "-")
            t0 += b.seconds
        what = ", ".join(f"{b.gait} {b.seconds:g} s" for b in bouts) if len(bouts) > 1 else params.gait
        head = (
            f"simulated {t0:g} s at {params.rate_hz:g} Hz ({len(sim.batch)} samples), {what}: "
        )
        cad = " / ".join(cads)
        if steps:
            print(
                head + f"{len(steps)} steps (L {n_l}, R {len(steps) - n_l}), cadence {cad} spm, "
                f"CPD L {cpd_l:.1f} / R {cpd_r:.1f} deg"
            )
        else:
            print(head + "no complete step (the session ends while standing or in the first step)")
        if written:
            print("wrote " + ", ".join(written))
        else:
            print("nothing written (give -o CSV and/or --truth JSON)")
    return 0
