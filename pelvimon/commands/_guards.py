"""Guards the commands share: argparse types for numbers, and checks of output paths.

Numbers
-------
Every number option of a command goes through one of the types below, so that ``nan``, ``inf`` and values
outside the range the rest of pelvimon accepts are refused by argparse itself: one line naming the option
and the range, exit code 2. The ranges are not invented here: the simulator's parameters are checked by
:class:`~pelvimon.sensors.simulator.SimParams` itself (:func:`sim_value`), the sample rate by the gait
analysis' limits (:data:`pelvimon.analysis.MIN_RATE_HZ`, the event detector's 20 Hz, to
:data:`~pelvimon.analysis.MAX_RATE_HZ`). Where only a sanity bound is natural it is stated in the type's
documentation and in the option's help.

Output paths
------------
:func:`check_output` refuses an output file that would destroy data: the command's own input, an existing
recorded session or CSV of IMU samples, a runner's baseline or a simulated session's truth (unless the output is
one of those itself), a folder, an empty name. :func:`check_session_output` does the same for the session file a
command records to.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from pelvimon.errors import PelvimonError, UsageError
from pelvimon.file_kinds import (
    KEPT_FORMATS,
    SESSION_SUFFIX,
    is_imu_csv,
    is_session_file,
    pelvimon_json_format,
)

MAX_SECONDS = 86_400.0
"""Longest ``--seconds`` of a recording: one day, s (leave ``--seconds`` out to run until Ctrl-C)."""
SPEED_RANGE = (0.1, 1000.0)
"""Emulation / replay speed, x real time: 10 times slower to 1000 times faster (faster emulation cannot
keep the emulated radio in time and loses notifications)."""
MAX_SCAN_S = 120.0
"""Longest Bluetooth scan, s."""


# --- numbers ----------------------------------------------------------------------------------------------


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """argparse type: any finite number (``nan`` and ``inf`` refused)."""
    return _float(text)


def number_in(
    lo: float | None = None,
    hi: float | None = None,
    unit: str = "",
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    zero_ok: bool = False,
    zero_means: str = "",
) -> Callable[[str], float]:
    """An argparse type for a finite number in ``[lo, hi]`` (``lo_open``, ``hi_open``: that bound refused).

    Parameters
    ----------
    lo, hi : float, optional
        Bounds (None: unbounded on that side).
    unit : str
        Unit shown in the message (" s", " Hz"...), with its leading space.
    lo_open, hi_open : bool
        The bound itself is refused (e.g. ``> 0``).
    zero_ok : bool
        0 is accepted besides the range (a special value, described by ``zero_means``).
    """

    def convert(text: str) -> float:
        value = _float(text)
        if zero_ok and value == 0:
            return value
        low_ok = lo is None or (value > lo if lo_open else value >= lo)
        high_ok = hi is None or (value < hi if hi_open else value <= hi)
        if low_ok and high_ok:
            return value
        low = None if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        high = None if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
        if low and high and not (lo_open or hi_open):
            rng = f"between {lo:g} and {hi:g}{unit}"
        else:
            rng = " and ".join(b for b in (low, high) if b) + unit
        zero = f" (or 0 = {zero_means})" if zero_ok else ""
        raise argparse.ArgumentTypeError(f"must be {rng}{zero}, got {text}")

    convert.__name__ = "number"
    return convert


positive_seconds = number_in(0.0, MAX_SECONDS, " s", lo_open=True)
"""argparse type: a duration > 0 s and at most :data:`MAX_SECONDS` (one day)."""

speed = number_in(*SPEED_RANGE, " x real time")
"""argparse type: an emulation or replay speed in :data:`SPEED_RANGE`."""

replay_speed = number_in(*SPEED_RANGE, " x real time", zero_ok=True, zero_means="as fast as possible")
"""argparse type: a replay speed in :data:`SPEED_RANGE`, or 0 for as fast as possible."""

scan_seconds = number_in(0.0, MAX_SCAN_S, " s", lo_open=True)
"""argparse type: a scan time > 0 s and at most :data:`MAX_SCAN_S`."""

loss_share = number_in(0.0, 1.0, hi_open=True)
"""argparse type: a share of lost notifications, 0 to below 1 (the emulator's ``Faults.loss``)."""


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a random seed)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def rate_hz(text: str) -> float:
    """argparse type: a sample rate the gait analysis takes, ``MIN_RATE_HZ`` (the event detector's 20 Hz)
    to ``MAX_RATE_HZ``, Hz."""
    from pelvimon.analysis import MAX_RATE_HZ, MIN_RATE_HZ

    value = _float(text)
    if not MIN_RATE_HZ <= value <= MAX_RATE_HZ:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_RATE_HZ:g} and {MAX_RATE_HZ:g} Hz (the gait analysis needs at least "
            f"{MIN_RATE_HZ:g} Hz), got {text}"
        )
    return value


def sim_value(field: str) -> Callable[[str], float]:
    """An argparse type for the simulator parameter ``field``: the range is the one
    :class:`~pelvimon.sensors.simulator.SimParams` checks (e.g. ``cpd_left_deg`` 0..25 deg)."""

    def convert(text: str) -> float:
        from pelvimon.sensors.simulator import SimParams, SimParamsError

        value = _float(text)
        try:
            SimParams(**{field: value})  # type: ignore[arg-type]
        except SimParamsError as exc:
            msg = str(exc)
            msg = msg[len(field):].lstrip() if msg.startswith(field) else msg
            raise argparse.ArgumentTypeError(msg) from None
        return value

    convert.__name__ = "number"
    return convert


# --- output paths -----------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # links, case-insensitive file systems
    except OSError:
        return a.resolve() == b.resolve()


def _as_path(path: str | os.PathLike[str] | None, option: str) -> Path:
    if path is None or not str(os.fspath(path)).strip():
        raise UsageError(f"{option}: the file name is empty; give a file name")
    if str(os.fspath(path)).strip() == "-":
        raise UsageError(f"{option} -: give a file name (for standard output, give /dev/stdout)")
    return Path(path)


def check_output(
    path: str | os.PathLike[str] | None,
    inputs: Iterable[str | os.PathLike[str] | None],
    option: str,
    *,
    writes: str | None = None,
) -> Path:
    """Refuse an output file that would destroy data; return it as a ``Path``.

    Call it before any work, for every file a command writes.

    Parameters
    ----------
    path : str or Path
        The output file as the user gave it.
    inputs : iterable of str or Path or None
        Every file the command reads (recording, ``--config``, ``--baseline``...); None entries are skipped.
    option : str
        The option that gave ``path`` (``-o/--output``, ``--csv``...), for the message.
    writes : str, optional
        The ``"format"`` of the JSON document the option writes, if it is one of
        :data:`~pelvimon.file_kinds.KEPT_FORMATS`: a file of that kind may be replaced by it.

    Raises
    ------
    UsageError
        The name is empty, or it is one of the ``inputs`` (exit 2).
    PelvimonError
        It is a folder, an existing session file (``.mcap`` or MCAP content) or CSV of IMU samples
        (recordings are never overwritten), a runner's baseline or a simulated session's truth that the
        option does not write, or its folder does not exist or is a file (exit 1).
    """
    out = _as_path(path, option)
    _check_not_an_input(out, inputs, option)
    if out.is_dir():
        raise PelvimonError(f"{option} {out} is a directory; give a file name")
    if out.exists() and is_session_file(out):
        raise PelvimonError(
            f"{option} {out} is a recorded session; choose another name (sessions are never overwritten)"
        )
    if is_imu_csv(out):
        raise PelvimonError(
            f"{option} {out} holds IMU samples (a recording); choose another name, or delete it first if it "
            "is no longer needed (recordings are never overwritten)"
        )
    kept = pelvimon_json_format(out)
    if kept in KEPT_FORMATS and kept != writes:
        raise PelvimonError(
            f"{option} {out} holds {KEPT_FORMATS[kept]}; choose another name, or delete it first if it is no "
            "longer needed"
        )
    _check_folder(out)
    return out


def _check_not_an_input(out: Path, inputs: Iterable[str | os.PathLike[str] | None], option: str) -> None:
    for inp in inputs:
        if inp is None or not str(os.fspath(inp)).strip():
            continue
        if out.exists() and Path(inp).exists() and _same_file(out, Path(inp)):
            raise UsageError(
                f"{option} {out} is the input file {inp}; write to another file (inputs are never overwritten)"
            )


def _check_folder(out: Path) -> None:
    for folder in (out.parent, *out.parent.parents):  # the nearest that exists must be a folder
        if folder.exists():
            if not folder.is_dir():
                raise PelvimonError(f"cannot write {out}: {folder} is a file, not a folder; give another path")
            break
    if not out.parent.is_dir():
        raise PelvimonError(f"cannot write {out}: folder {out.parent} does not exist; create it first")


def check_outputs(
    outputs: Mapping[str, str | os.PathLike[str] | None],
    inputs: Iterable[str | os.PathLike[str] | None],
    writes: Mapping[str, str] | None = None,
) -> dict[str, Path | None]:
    """:func:`check_output` for every output (``{option: path}``, None = not asked for; ``writes``: the
    format of the options that write a kept JSON document), then :func:`check_distinct`; the outputs as
    ``Path`` (None kept). Call it before any work."""
    inputs = list(inputs)
    kinds = writes or {}
    checked = {opt: None if p is None else check_output(p, inputs, opt, writes=kinds.get(opt))
               for opt, p in outputs.items()}
    check_distinct(outputs)
    return checked


def check_distinct(outputs: Mapping[str, str | os.PathLike[str] | None]) -> None:
    """Refuse two options that name the same output file (``{option: path}``; None entries skipped)."""
    seen: list[tuple[str, Path]] = []
    for option, path in outputs.items():
        if path is None or not str(os.fspath(path)).strip():
            continue
        p = Path(path)
        for other, q in seen:
            if p.resolve() == q.resolve():
                raise UsageError(f"{other} and {option} name the same file; give two different files")
        seen.append((option, p))


def check_session_output(
    path: str | os.PathLike[str] | None,
    option: str = "-o",
    *,
    overwrite: bool | None = None,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """Check the session file a command records to; return it as a ``Path``.

    Refuses an empty name, one of the command's ``inputs`` and a name not ending in ``.mcap`` (exit 2), a
    folder, a missing folder and an existing file unless ``overwrite`` is true (exit 1; None: the command
    has no ``--overwrite``). Creates and deletes nothing.
    """
    out = _as_path(path, option)
    _check_not_an_input(out, inputs, option)
    if out.is_dir():
        raise PelvimonError(f"{option} {out} is a directory; give a file name ending in {SESSION_SUFFIX}")
    if out.suffix.lower() != SESSION_SUFFIX:
        raise UsageError(f"{option} {out}: session files end in {SESSION_SUFFIX}")
    _check_folder(out)  # (a missing folder is refused, as for every output: a typo must not go unseen)
    if out.exists() and not overwrite:
        if overwrite is None:
            raise PelvimonError(f"{out} exists already; choose another name (sessions are never overwritten)")
        raise PelvimonError(f"{out} exists already; choose another name or add --overwrite")
    return out
