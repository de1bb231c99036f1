"""The ``pelvimon`` console script: one entry point, one subcommand per module in ``pelvimon.commands``."""

from __future__ import annotations

import argparse
import atexit
import importlib
import logging
import os
import pkgutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType, ModuleType
from typing import Any, NoReturn

import pelvimon
from pelvimon import commands
from pelvimon.errors import PelvimonError, UsageError, is_disk_full

log = logging.getLogger("pelvimon")

SESSION_COMMANDS = frozenset({"live", "demo", "record", "replay"})
"""Commands that run a session: SIGTERM and SIGHUP end them the way Ctrl-C does (see :func:`stop_signals`)."""

BATCH_COMMANDS = frozenset({"analyze", "decode", "report", "simulate"})
"""Commands that read, compute, write and end: the console script ends their process without the
interpreter's teardown (see :func:`run`). A command listed here closes every file it writes before it
returns (nothing is left for a finaliser to flush) and leaves no process of its own running."""

SIGNALS_HELP = (
    "Ending a session: Ctrl-C, SIGTERM (kill, systemd, docker stop) and SIGHUP (the terminal or SSH connection "
    "closed) all end a running live, demo, record or replay session cleanly: the session file is closed with "
    "its index; record and replay print their summary line, live and demo the file's name. Exit code 0 after Ctrl-C, 143 (128 + 15) after SIGTERM, 129 "
    "(128 + 1) after SIGHUP. Started under nohup, SIGHUP stays ignored."
)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _CommandParser(_Parser):
    """The parser of one command: arguments it does not know are its usage error ("pelvimon analyze:
    error: ..."), not left over for the top-level parser to report."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def,override]
        ns, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return ns, extra


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
        epilog=SIGNALS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"pelvimon {pelvimon.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    table: dict[str, ModuleType] = {}
    for mod in _command_modules():
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            epilog=SIGNALS_HELP if mod.NAME in SESSION_COMMANDS else None,
        )
        mod.add_arguments(p)
        _add_global_options(p)
        table[mod.NAME] = mod
    return parser, table


def _add_global_options(p: argparse.ArgumentParser) -> None:
    """``-v``, ``-q`` and ``--debug`` after the command too (``pelvimon analyze -q run.csv``): given there they
    count as given before it (:func:`_join_global_options`)."""
    g = p.add_argument_group("global options (also before the command)")
    g.add_argument("-v", "--verbose", dest="verbose_after", action="count", default=0,
                   help="more log output (-vv for debug)")
    g.add_argument("-q", "--quiet", dest="quiet_after", action="store_true", help="only errors on stderr")
    g.add_argument("--debug", dest="debug_after", action="store_true", help="show tracebacks of failures")


def _join_global_options(args: argparse.Namespace) -> None:
    """The global options given after the command added to those before it (``-v x -v`` is ``-vv``)."""
    args.verbose += getattr(args, "verbose_after", 0)
    args.quiet = args.quiet or getattr(args, "quiet_after", False)
    args.debug = args.debug or getattr(args, "debug_after", False)


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="pelvimon: %(levelname)s: %(message)s", stream=sys.stderr)


class _StopSignals:
    """Which of SIGTERM/SIGHUP arrived while :func:`stop_signals` was in force (the first one counts)."""

    def __init__(self) -> None:
        self.received: int | None = None

    @property
    def exit_code(self) -> int | None:
        """The shell's convention for a process ended by a signal: 128 + the signal number."""
        return None if self.received is None else 128 + self.received

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """Take the Ctrl-C path: call whatever handles SIGINT now (asyncio's runner cancels the session
        task, the terminal dashboard gets KeyboardInterrupt, the Qt window closes itself).

        With SIGINT ignored (a background job of a script) that path is the plain KeyboardInterrupt. Where
        an asyncio event loop runs in this thread, it is raised from a callback of the loop, between two of
        its steps: raised wherever the signal lands, it can cut a step short (a task's wake-up scheduled
        halfway), and the runner's clean-up then waits for that task forever.
        """
        if self.received is None:
            self.received = signum
        on_int = signal.getsignal(signal.SIGINT)
        if callable(on_int):
            on_int(signal.SIGINT, frame)
            return
        loop = _running_loop()
        if loop is None:
            raise KeyboardInterrupt
        loop.call_soon_threadsafe(_interrupt)


def _running_loop() -> Any:
    """The asyncio event loop running in this thread, or None (asyncio is not imported for nothing)."""
    aio = sys.modules.get("asyncio")
    if aio is None:
        return None
    try:
        return aio.get_running_loop()
    except RuntimeError:
        return None


def _interrupt() -> NoReturn:
    raise KeyboardInterrupt


def _stop_signal_numbers() -> list[int]:
    sigs: list[int] = [signal.SIGTERM]
    hup = getattr(signal, "SIGHUP", None)  # not on Windows
    if hup is not None:
        sigs.append(hup)
    return sigs


@contextmanager
def stop_signals(state: _StopSignals | None = None) -> Iterator[_StopSignals]:
    """While in force, SIGTERM and SIGHUP (where it exists) end the session the way Ctrl-C does.

    Only in the main thread (Python delivers signals there). A signal the process was started with
    ignored (SIGHUP under ``nohup``) stays ignored. The previous handlers are restored on exit.
    """
    state = state if state is not None else _StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
    try:
        for sig in _stop_signal_numbers():
            old = signal.getsignal(sig)
            if old == signal.SIG_IGN:
                continue
            previous[sig] = old
            signal.signal(sig, state.handle)
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def _say(message: str) -> None:
    """One line on stderr; nothing if stderr is gone (a closed SSH terminal after SIGHUP)."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _release_dead_streams() -> None:
    """After SIGHUP the terminal may be gone: point stdout/stderr whose flush fails at the null device, so
    that the interpreter's last flush does not turn a clean exit into an error."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
                stream.flush()
            except (OSError, ValueError):
                pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pelvimon ARGS`` (the command line's by default) in this process; the exit code."""
    return _main(argv)[0]


def run() -> NoReturn:
    """The console script and ``python -m pelvimon``: :func:`main`, then the end of the process.

    After a batch command (:data:`BATCH_COMMANDS`) the process ends with ``os._exit`` once the exit
    handlers have run and the output is flushed, while no other thread runs: the interpreter's teardown
    would only free every module's objects (SciPy's and pandas' take 0.2 s), since those commands leave no
    file open. Otherwise it exits the usual way.
    """
    code, command = _main(None)
    if command in BATCH_COMMANDS and threading.active_count() == 1:
        _end_now(code)
    raise SystemExit(code)


def _end_now(code: int) -> None:
    """End the process with ``code`` after the exit handlers and a flush of stdout and stderr (141, as
    :func:`_run` ends, if the reader of the output went away); return (for the usual exit) if a flush
    fails otherwise."""
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # pragma: no cover - not CPython
        return
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            _release_dead_streams()
            os._exit(141)
        except (OSError, ValueError, AttributeError):
            return
    os._exit(code)


def _main(argv: Sequence[str] | None) -> tuple[int, str | None]:
    """:func:`main`, and the command that ran (None: none)."""
    parser, table = build_parser()
    args = parser.parse_args(argv)
    _join_global_options(args)
    _setup_logging(args.verbose, args.quiet)
    if args.command is None:
        parser.print_help()
        return 2, None
    if args.command not in SESSION_COMMANDS:
        return _run(args, table), args.command
    stop = _StopSignals()
    try:
        with stop_signals(stop):
            code = _run(args, table, stop)
    except KeyboardInterrupt:  # a signal just after the command had returned
        code = 130
    if stop.exit_code is not None:
        # the session took the Ctrl-C path (file closed, summary printed); the exit code tells the signal
        _say(f"pelvimon: stopped by {stop.name}")
        _release_dead_streams()
        return stop.exit_code, args.command
    return code, args.command


def _run(args: argparse.Namespace, table: dict[str, ModuleType], stop: _StopSignals | None = None) -> int:
    """Run the command; every failure becomes one line on stderr and an exit code."""
    try:
        return int(table[args.command].run(args) or 0)
    except KeyboardInterrupt:
        if stop is None or stop.received is None:
            _say("pelvimon: interrupted")
        return 130
    except UsageError as exc:
        if args.debug:
            raise
        _say(f"pelvimon {args.command}: error: {exc}")
        return exc.exit_code
    except BrokenPipeError:
        # the reader of our output went away (``| head``): nothing is wrong; end quietly, as a process
        # ended by SIGPIPE would (128 + 13), without a failing flush of the dead pipe at exit
        _release_dead_streams()
        return 141
    except (PelvimonError, ValueError, OSError, RuntimeError) as exc:
        if args.debug:
            raise
        code = getattr(exc, "exit_code", 1)
        text = _one_line(exc)
        if is_disk_full(exc):  # (a full disk under the output, standard output included)
            where = getattr(exc, "filename", None) or "the output"
            text = f"no space left to write {where} (the disk or a quota is full); free some space or write elsewhere"
        _say(f"pelvimon {args.command}: error: {text}")
        return code
    except Exception as exc:  # noqa: BLE001 - the last guard: one line, never a traceback
        if args.debug:
            raise
        _say(
            f"pelvimon {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run with --debug for details and please report it)"
        )
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    run()
