"""The ``pelvimon`` console script: one entry point, one subcommand per module in ``pelvimon.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

import pelvimon
from pelvimon import commands
from pelvimon.errors import PelvimonError, UsageError

log = logging.getLogger("pelvimon")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _command_modules() -> list[ModuleType]:
    mods = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "run"):
            mods.append(mod)
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = _Parser(
        prog="pelvimon",
        description="Live pelvic drop, tilt, rotation and cadence from one sacral IMU over Bluetooth LE.",
    )
    parser.add_argument("--version", action="version", version=f"pelvimon {pelvimon.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    table: dict[str, ModuleType] = {}
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        table[mod.NAME] = mod
    return parser, table


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="pelvimon: %(levelname)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser, table = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(table[args.command].run(args) or 0)
    except KeyboardInterrupt:
        print("pelvimon: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        if args.debug:
            raise
        print(f"pelvimon {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (PelvimonError, ValueError, OSError, RuntimeError) as exc:
        if args.debug:
            raise
        code = getattr(exc, "exit_code", 1)
        print(f"pelvimon {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return code
    except Exception as exc:  # noqa: BLE001 - the last guard: one line, never a traceback
        if args.debug:
            raise
        print(
            f"pelvimon {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run with --debug for details and please report it)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
