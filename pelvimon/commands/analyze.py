"""``pelvimon analyze``: a recording (CSV or session file) -> steps, per-side summary, asymmetry, alerts."""

from __future__ import annotations

import argparse
import math
from typing import Any

NAME = "analyze"
ORDER = 60
HELP = "analyse a recording (CSV or session file): steps, left/right summary, asymmetry, alerts"
DESCRIPTION = (
    "Run the gait analysis over a recording and print the per-side summary, the left/right asymmetry "
    "with confidence intervals, the alerts and the data quality. --json prints one JSON object "
    '{"steps", "summary", "alerts", "quality"}; --csv writes the per-step table. CSV input uses the columns '
    "t_s, acc_x_mps2, acc_y_mps2, acc_z_mps2, gyr_x_rads, gyr_y_rads, gyr_z_rads unless --columns says "
    "otherwise."
)


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The input, configuration and CSV import options shared by ``analyze`` and ``report``."""
    parser.add_argument("input", metavar="INPUT", help="recording: a CSV file (also gzip-compressed) or a session file (.mcap)")
    parser.add_argument("--config", metavar="FILE", help="TOML file with thresholds and windows (see docs)")
    parser.add_argument("--baseline", metavar="FILE", help="compare with this runner baseline (JSON)")
    add_csv_arguments(parser)


def add_csv_arguments(parser: argparse.ArgumentParser) -> None:
    """The CSV import options (column names, units), shared by ``analyze``, ``report`` and ``review``."""
    g = parser.add_argument_group("CSV import")
    g.add_argument(
        "--columns",
        metavar="MAP",
        help="file column names for the design's, e.g. t_s=time,acc_x_mps2=ax,... (only those that differ)",
    )
    g.add_argument(
        "--acc-unit", choices=("mps2", "g"), default="mps2", help="accelerometer unit (default mps2)"
    )
    g.add_argument(
        "--gyr-unit", choices=("rads", "dps"), default="rads", help="gyroscope unit (default rads)"
    )
    g.add_argument(
        "--time-unit", choices=("s", "ms", "us", "ns"), default="s", help="unit of the time column (default s)"
    )


def csv_options_from_args(args: argparse.Namespace) -> Any:
    """The :class:`pelvimon.analysis.CsvOptions` the CSV import options ask for (bad ``--columns``: usage error)."""
    from pelvimon.analysis import CsvOptions
    from pelvimon.errors import UsageError
    from pelvimon.file_kinds import is_session_file

    d = CsvOptions()
    given = [o for o, v, default in (("--columns", args.columns, d.columns), ("--acc-unit", args.acc_unit, d.acc_unit),
                                     ("--gyr-unit", args.gyr_unit, d.gyr_unit),
                                     ("--time-unit", args.time_unit, d.time_unit)) if v != default]
    path = args.input if hasattr(args, "input") else args.file  # (analyze and report; review)
    if given and str(path).strip() and is_session_file(path):
        raise UsageError(
            f"{' and '.join(given)} describe{'s' if len(given) == 1 else ''} a CSV file; {path} is a session "
            "file, which records its units and axes itself: leave them out"
        )
    columns = None
    if args.columns:
        from pelvimon.sensors.csv_source import parse_columns_option

        try:
            columns = parse_columns_option(args.columns)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return CsvOptions(columns=columns, acc_unit=args.acc_unit, gyr_unit=args.gyr_unit, time_unit=args.time_unit)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    parser.add_argument("--csv", metavar="OUT", help="write the per-step table to this CSV file")
    parser.add_argument(
        "--save-baseline",
        metavar="FILE",
        help="save this session's per-side summary as a runner baseline (JSON)",
    )
    parser.add_argument("--runner", metavar="NAME", help="runner name stored with --save-baseline")


def analysis_from_args(args: argparse.Namespace) -> Any:
    """Load config, baseline and input as the options say and run the analysis (shared with ``report``)."""
    from pelvimon.analysis import analyze_file
    from pelvimon.config import load_baseline, load_config

    csv = csv_options_from_args(args)
    config = load_config(args.config)
    baseline = load_baseline(args.baseline) if args.baseline is not None else None
    return analyze_file(args.input, config, csv=csv, baseline=baseline)


def input_files(args: argparse.Namespace) -> list[str | None]:
    """Every file the input options name (recording, ``--config``, ``--baseline``): never an output."""
    return [args.input, getattr(args, "config", None), getattr(args, "baseline", None)]


def check_outputs(args: argparse.Namespace, outputs: dict[str, str | None]) -> None:
    """Refuse outputs (``{option: path}``, None = not asked for) that would overwrite an input, a recorded
    session, a baseline (but by ``--save-baseline``) or each other; before any work is done."""
    from pelvimon.commands import _guards
    from pelvimon.file_kinds import BASELINE_FORMAT

    _guards.check_outputs(outputs, input_files(args), {"--save-baseline": BASELINE_FORMAT})


def run(args: argparse.Namespace) -> int:
    import json

    from pelvimon.analysis import baseline_of, steps_csv_text
    from pelvimon.config import save_baseline
    from pelvimon.errors import PelvimonError, UsageError
    from pelvimon.file_kinds import BASELINE_FORMAT, pelvimon_json_format
    from pelvimon.outputs import write_output

    if args.runner is not None and not args.save_baseline:
        raise UsageError("--runner names the runner of a saved baseline: add --save-baseline FILE")
    check_outputs(args, {"--csv": args.csv, "--save-baseline": args.save_baseline})
    analysis = analysis_from_args(args)
    if args.save_baseline and not analysis.n_steps_used():
        raise PelvimonError(
            f"{analysis.name}: no walking or running steps with a known side, so no baseline to save (it would "
            "compare nothing); take it from a session of steady running"
        )
    if args.csv:
        write_output(args.csv, steps_csv_text(analysis.steps))
    replaced = bool(args.save_baseline) and pelvimon_json_format(args.save_baseline) == BASELINE_FORMAT
    if args.save_baseline:
        save_baseline(args.save_baseline, baseline_of(analysis, runner=args.runner))
    if args.json:
        print(json.dumps(analysis.to_json(), allow_nan=False))
    else:
        print_report(analysis)
        if args.csv:
            print(f"per-step table written to {args.csv}")
        if args.save_baseline:
            print(f"baseline written to {args.save_baseline}" + (" (in place of the one saved there before)" if replaced else ""))
    return 0


# --- terminal report ------------------------------------------------------------------------------------


_NBSP = "\u00a0"  # keeps a number and its unit on one line when a table cell wraps


def _fmt(metric: str, v: float, signed: bool = False) -> str:
    from pelvimon.dsp.alerts import display_number

    if not math.isfinite(v):
        return "n/a"
    return _with_unit(metric, display_number(metric, v, signed))


def _with_unit(metric: str, shown: str) -> str:
    from pelvimon.dsp.alerts import display_unit

    unit = display_unit(metric)
    return shown if shown == "n/a" else shown + ("" if unit in ("°", "") else _NBSP) + unit


def _fmt_interval(metric: str, diff: float, low: float, high: float) -> str:
    """``+0.2 ms [-0.9 ms, +1.3 ms]``: a difference and its interval with the same digits."""
    from pelvimon.dsp.alerts import display_interval

    d, lo, hi = (_with_unit(metric, x) for x in display_interval(metric, diff, low, high))
    return f"{d} [{lo}, {hi}]"


def _print_sides(con: Any, analysis: Any, part: Any, title: str) -> None:
    """The left/right table of one gait's ``GaitPart`` (per-side mean, SD, n; L-R with its interval; SI) and
    its contact balance."""
    from rich.table import Table

    from pelvimon.analysis import applies
    from pelvimon.dsp.alerts import metric_label

    lvl = round(100 * analysis.config.asymmetry.level)
    t = Table(title=title, title_justify="left")
    for col in ("metric", "left mean ± SD (n)", "right mean ± SD (n)", f"L−R [{lvl} % CI]", "SI"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for m, (left, right) in part.side_stats.items():
        if not applies(part.gait, m):
            continue
        a = part.asymmetry.get(m)
        ci = _fmt_interval(m, a.diff, a.diff_ci_low, a.diff_ci_high) if a else "n/a"
        si = _fmt("symmetry_index_pct", a.symmetry_index_pct, True) + " %" if a else "n/a"
        t.add_row(
            metric_label(m),
            f"{_fmt(m, left.mean)} ±{_NBSP}{_fmt(m, left.sd)} ({left.n})",
            f"{_fmt(m, right.mean)} ±{_NBSP}{_fmt(m, right.sd)} ({right.n})",
            ci,
            si,
        )
    con.print(t)
    bal = analysis.contact_time_balance(part.asymmetry)
    if bal is not None:
        con.print(
            f"Ground contact balance: {bal['value_pct']:.1f} % left [{bal['ci_low_pct']:.1f}, "
            f"{bal['ci_high_pct']:.1f}] (normal {bal['normal_low_pct']:g}-{bal['normal_high_pct']:g} %)",
            markup=False,
        )


def _print_all_steps(con: Any, s: dict[str, Any]) -> None:
    """Mean ± SD (n) of every metric over the steps of the session's gait, sides unknown."""
    from rich.table import Table

    from pelvimon.analysis import all_steps_rows
    from pelvimon.dsp.alerts import metric_label

    rows = all_steps_rows(s)
    if not rows:
        return
    t = Table(title=f"All {s['gait']} steps (side unknown)", title_justify="left")
    for col in ("metric", "mean ± SD (n)"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for m, v in rows:
        t.add_row(metric_label(m), f"{_fmt(m, v['mean'])} ±{_NBSP}{_fmt(m, v['sd'])} ({v['n']})")
    con.print(t)


def print_report(analysis: Any) -> None:
    """A readable terminal report of a ``SessionAnalysis`` (rich tables)."""
    from rich.console import Console
    from rich.table import Table

    from pelvimon.analysis import (
        NO_GYROSCOPE_NOTE,
        SIDES_LEGEND,
        calibration_text,
        file_damage_text,
        mount_moved_text,
        no_angles_why,
        turning_why,
    )
    from pelvimon.dsp.alerts import figures_note, metric_label

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # (rich would exit with 1, a failure): the CLI ends quietly
            self.quiet = True
            raise BrokenPipeError

        def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
            # into a file or a pipe, a line of text stays one line (a reader wraps it; it was cut at 120
            # columns mid-sentence); tables keep their width
            if not self.is_terminal and all(isinstance(o, str) for o in objects):
                kwargs.setdefault("soft_wrap", True)
            super().print(*objects, **kwargs)

    con = _Console(highlight=False)
    if not con.is_terminal:
        con = _Console(highlight=False, width=120)  # a file or a pipe: no need to wrap at 80 columns
    q = analysis.quality
    s = analysis.summary()
    con.print(f"[bold]{analysis.name}[/bold]", markup=True, highlight=False)
    cad = s["cadence_spm"]
    gait = f" {s['gait']}" if s["gait"] else ""
    cad_of = f"{s['gait']} cadence" if analysis.other_gaits else "cadence"
    con.print(
        f"{q.duration_s:.1f} s, {s['n_steps']} steps ({s['n_steps_used']}{gait} steps used for left/right), "
        f"{cad_of} {f'{cad:.1f} steps/min' if math.isfinite(cad) else 'n/a'}",
        markup=False,
    )
    damage = file_damage_text(q)
    if damage is not None:  # first, before any figure: the figures cover only what could be read
        con.print(damage, markup=False, style="bold", soft_wrap=True)
    if analysis.phases:
        con.print(
            "gait: " + analysis.phases_text(),
            markup=False,
            soft_wrap=True,
        )
    if not s["n_steps_used"]:
        con.print(
            "No steps to compare: the pipeline found no walking or running steps with a known side "
            "(see the data quality below).",
            markup=False,
        )
        _print_all_steps(con, s)
    else:
        whole = "" if analysis.other_gaits else " (whole session)"
        _print_sides(con, analysis, analysis.parts[s["gait"]], f"Left / right: {s['gait']} steps{whole}")
    for g, part in analysis.other_gaits.items():
        o = s["other_gaits"][g]
        if o["n_steps_used"]:
            con.print()
            _print_sides(con, analysis, part, f"Left / right: {g} steps ({o['n_steps_used']} used, "
                         f"cadence {o['cadence_spm']:.1f} steps/min)")
    if s["n_steps_used"] or any(o["n_steps_used"] for o in s["other_gaits"].values()):
        con.print(SIDES_LEGEND, markup=False)
    if q.has_gyroscope is False:
        con.print(NO_GYROSCOPE_NOTE, markup=False)
    con.print()
    if analysis.alerts:
        con.print("[bold]Alerts[/bold]")
        for al in analysis.alerts:
            end = f"{al.t_end_s:.0f}" if al.t_end_s is not None else "end"
            con.print(f"  {al.t_start_s:.0f}-{end} s  {al.message}", markup=False, soft_wrap=True)
        con.print("  (" + figures_note(analysis.config.alerts) + ")", markup=False, soft_wrap=True)
    else:
        con.print("No alerts: no credible and meaningful left/right difference lasted long enough.")
    if analysis.baseline is not None:
        meta = analysis.baseline["meta"]
        runner = f", runner {meta['runner']}" if meta.get("runner") else ""
        bt = Table(
            title=f"Change from baseline ({meta.get('source', '?')}{runner})",
            title_justify="left",
        )
        for col in ("metric", "left change", "right change", "L−R change [CI]"):
            bt.add_column(col, justify="left" if col == "metric" else "right")
        compared = analysis.baseline["metrics"]
        for m, e in compared.items():
            d = e["diff"]
            mark = " *" if d["credible"] else ""
            bt.add_row(
                metric_label(m),
                _fmt(m, e["left"]["change"], True) + (" *" if e["left"]["credible"] else ""),
                _fmt(m, e["right"]["change"], True) + (" *" if e["right"]["credible"] else ""),
                _fmt_interval(m, d["change"], d["ci_low"], d["ci_high"]) + mark,
            )
        if compared:
            con.print(bt)
        else:
            con.print(bt.title, markup=False)
        starred = any(
            e["diff"]["credible"] or e["left"]["credible"] or e["right"]["credible"]
            for e in compared.values()
        )
        if starred:
            con.print("* the interval excludes zero", markup=False)
        if analysis.baseline.get("note"):
            con.print(f"Note: {analysis.baseline['note']}", markup=False, soft_wrap=True)
    con.print("[bold]Data quality[/bold]")
    cal = calibration_text(q)
    lines = [
        f"samples: {q.n_samples} at {q.rate_hz:.1f} Hz; gaps: {q.n_batches_after_gap} "
        f"({q.n_samples_lost} samples lost), bridged: {q.n_gaps_bridged}, pipeline restarts: {q.n_gap_events}",
        f"calibration: {cal}",
        *(f"sensor moved: {mount_moved_text(m)}" for m in q.mount_moves),
        f"laterality confidence: mean {q.mean_laterality_confidence:.2f}, min {q.min_laterality_confidence:.2f}",
        f"steps left out: {q.n_steps_gap} at gaps, {q.n_steps_low_laterality} with an uncertain side"
        + (f" ({100 * q.share_steps_flagged:.1f} % flagged)" if math.isfinite(q.share_steps_flagged) else ""),
        f"steps without pelvis angles: {q.n_steps_no_angles} ({no_angles_why(q)})",
    ]
    if q.n_steps_turning:
        lines.append(f"steps without a rotation range: {q.n_steps_turning} ({turning_why()})")
    loss = q.frequent_loss_text()
    if loss is not None:
        lines.insert(1, f"note: {loss}")
    for line in lines:
        con.print("  " + line.replace("nan", "n/a"), markup=False)
    if q.file_damage.message is not None:  # (words, not figures: no n/a to put in)
        con.print(f"  session file: {q.file_damage.message}", markup=False)
