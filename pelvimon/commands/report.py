"""``pelvimon report``: one self-contained HTML report (figures embedded) of a recording."""

from __future__ import annotations

import argparse

NAME = "report"
ORDER = 70
HELP = "write a self-contained HTML report (tables and figures) of a recording"
DESCRIPTION = (
    "Analyse a recording (CSV or session file) like 'pelvimon analyze' and write ONE HTML file with the "
    "session summary, left/right spread, asymmetry over time, alerts, data quality and what the numbers "
    "mean. The file has no external links, scripts or fonts: it opens offline and can be mailed as is."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pelvimon.commands.analyze import add_input_arguments

    add_input_arguments(parser)
    parser.add_argument("-o", "--output", metavar="FILE", required=True, help="the HTML file to write")
    parser.add_argument("--title", help="report title (default: the input's file name)")
    parser.add_argument("--runner", metavar="NAME", help="runner's name shown in the report")
    parser.add_argument("--notes", help="free text shown under the title (e.g. shoes, speed, treadmill)")


def run(args: argparse.Namespace) -> int:
    from pelvimon.commands.analyze import analysis_from_args, check_outputs
    from pelvimon.outputs import write_output
    from pelvimon.report import render_report

    check_outputs(args, {"-o/--output": args.output})
    analysis = analysis_from_args(args)
    text = render_report(analysis, title=args.title, runner=args.runner, notes=args.notes)
    write_output(args.output, text, "report")
    if not getattr(args, "quiet", False):
        print(f"report written to {args.output}")
    return 0
