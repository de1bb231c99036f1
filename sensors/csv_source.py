"""IMU samples from CSV files: reading (strict, with line-numbered errors), writing, and a ``Source``.

Default columns (design.md): ``t_s, acc_x_mps2, acc_y_mps2, acc_z_mps2, gyr_x_rads, gyr_y_rads,
gyr_z_rads``; the gyroscope columns may be absent (accelerometer-only data). Other column names are given as a
mapping from the design's names to the file's names; accelerometer values in g and gyroscope values in deg/s
are converted. See ``docs/csv.md``.

Reading has two paths that give the same answer: a fast one (pandas' C parser, then vectorised checks) for
well-formed numeric files, and a line-by-line reference parser that runs only when the fast one fails or finds
something wrong; it names the first bad line (1-based, as an editor shows it) and what to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pelvimon.firmware_protocols.base import PLAUSIBLE_LIMITS
from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch, span_rate_hz

from .source import Source, SourceEvent, SourceInfo, SourceStatus, gap_status

log = logging.getLogger(__name__)

TIME_COLUMN = "t_s"
ACC_COLUMNS = ("acc_x_mps2", "acc_y_mps2", "acc_z_mps2")
GYR_COLUMNS = ("gyr_x_rads", "gyr_y_rads", "gyr_z_rads")
DEFAULT_COLUMNS = (TIME_COLUMN, *ACC_COLUMNS, *GYR_COLUMNS)
"""The design's column names, in the order ``write_imu_csv`` writes them."""

AccUnit = Literal["mps2", "g"]
GyrUnit = Literal["rads", "dps"]
_ACC_SCALE = {"mps2": 1.0, "g": G_MPS2}
_GYR_SCALE = {"rads": 1.0, "dps": math.pi / 180.0}
TimeUnit = Literal["s", "ms", "us", "ns"]
_TIME_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


class CsvFormatError(ValueError):
    """A CSV file cannot be used as IMU data. The one-line message names the file, the line and the fix."""


GZIP_MAGIC = b"\x1f\x8b"
"""The first bytes of a gzip-compressed file (``run.csv.gz``): read as the CSV it holds."""

_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")


def _uncompressed(name: str, raw: bytes, depth: int = 0) -> bytes:
    """The CSV text a file's bytes hold: those of a gzip-compressed file decompressed, any other as they are.

    Raises
    ------
    CsvFormatError
        A gzip file that is damaged or cut off (or compressed over and over); a zip archive or a spreadsheet
        workbook (Excel's ``.xlsx`` is a zip archive, its old ``.xls`` an OLE2 file), with what to do instead.
    """
    if raw.startswith(GZIP_MAGIC):
        import gzip
        import zlib

        if depth >= 4:  # (a gzip file can decompress to itself)
            raise CsvFormatError(f"{name}: gzip-compressed {depth} times over; decompress it and give the CSV inside")
        try:
            text = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:  # (gzip.BadGzipFile is an OSError)
            raise CsvFormatError(
                f"{name}: the gzip-compressed file is damaged or cut off ({exc}); copy it again from where it "
                "was recorded"
            ) from None
        return _uncompressed(name, text, depth + 1)
    ole2 = raw.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    if raw.startswith(b"PK\x03\x04") or ole2:
        head = raw[:4096]
        if ole2 or b"[Content_Types].xml" in head or b"opendocument.spreadsheet" in head or (
            name.lower().endswith(_WORKBOOK_SUFFIXES)
        ):
            raise CsvFormatError(
                f"{name}: a spreadsheet workbook, not CSV; save the sheet as CSV (comma-separated, UTF-8) and "
                "give that file"
            )
        raise CsvFormatError(f"{name}: a zip archive, not CSV; unzip it and give the CSV file inside")
    return raw


def parse_columns_option(text: str) -> dict[str, str]:
    """Parse ``--columns t_s=time,acc_x_mps2=ax,...`` into ``{"t_s": "time", "acc_x_mps2": "ax", ...}``.

    Raises
    ------
    ValueError
        On an unknown design column, a missing ``=`` or a repeated name; the message lists the known names.
    """
    out: dict[str, str] = {}
    known = ", ".join(DEFAULT_COLUMNS)
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(
                f"--columns entry {part!r} needs the form NAME=FILE_COLUMN (NAME one of {known})"
            )
        name, _, col = part.partition("=")
        name, col = name.strip(), col.strip()
        if name not in DEFAULT_COLUMNS:
            raise ValueError(f"--columns: unknown column {name!r}; use one of {known}")
        if not col:
            raise ValueError(f"--columns: {name}= needs the file's column name after '='")
        if name in out:
            raise ValueError(f"--columns: {name} is given twice")
        same = [n for n, c in out.items() if c == col]
        if same:
            raise ValueError(f"--columns: {same[0]} and {name} both name the file's column {col!r}; give each its own")
        out[name] = col
    if not out:
        raise ValueError(f"--columns is empty; give NAME=FILE_COLUMN pairs (NAME one of {known})")
    return out


class _MissingColumn(CsvFormatError):
    """Internal: a header candidate without a required column (a line of metadata, perhaps: see
    :func:`_header_layout`)."""


class _WrongSeparator(CsvFormatError):
    """Internal: a header candidate whose fields are separated by something other than commas."""


def _cell(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


class _Layout:
    """Which file columns hold the design's channels, found from the header line."""

    def __init__(self, name: str, header: str, header_line: int, columns: Mapping[str, str] | None) -> None:
        self.name = name
        self.header_line = header_line
        self.lines_above = False
        """Whether lines that are not comments come before the header (skipped: see :func:`_header_layout`)."""
        if "," not in header:
            for sep, word in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
                if sep in header:
                    raise _WrongSeparator(
                        f"{name}: line {header_line}: the fields are separated by {word}; pelvimon reads "
                        "comma-separated files (with a dot as the decimal mark): export or save the file as CSV "
                        "with commas"
                    )
        if '"' in header:  # quoted names may hold commas
            self.names = [c.strip() for c in _csv_fields(header)]
        else:
            self.names = [_cell(c) for c in header.split(",")]
        mapping = dict(columns or {})
        for key in mapping:
            if key not in DEFAULT_COLUMNS:
                raise CsvFormatError(
                    f"{name}: unknown column mapping {key!r}; use {', '.join(DEFAULT_COLUMNS)}"
                )
        seen: dict[str, int] = {}
        for i, c in enumerate(self.names):
            if c == "":
                continue  # (unnamed and unused: the empty columns a spreadsheet leaves at the end of a line)
            if c in seen:
                raise CsvFormatError(
                    f"{name}: line {header_line}: column {c!r} appears twice in the header; rename one"
                )
            seen[c] = i
        found = ", ".join(repr(c) for c in self.names[:20]) + (" ..." if len(self.names) > 20 else "")

        def where(key: str) -> int | None:
            return seen.get(mapping.get(key, key))

        self.index: dict[str, int] = {}
        for key in (TIME_COLUMN, *ACC_COLUMNS):
            found_at = where(key)
            if found_at is None:
                cells = [c for c in self.names if c]
                if cells and all(_is_number(c) is not None for c in cells):
                    # (numbers as column names are still names when --columns maps them)
                    raise CsvFormatError(
                        f"{name}: line {header_line}: the file has no header line (the first line holds "
                        f"numbers); add one that names the columns, e.g. {','.join(DEFAULT_COLUMNS)}"
                    )
                raise _MissingColumn(
                    f"{name}: line {header_line}: no column {mapping.get(key, key)!r} for {key} (found: {found}); "
                    "rename the header or map names with --columns t_s=...,acc_x_mps2=...,..."
                )
            self.index[key] = found_at
        gyr = [where(k) for k in GYR_COLUMNS]
        explicit = any(k in mapping for k in GYR_COLUMNS)
        if all(i is not None for i in gyr):
            self.index.update({k: i for k, i in zip(GYR_COLUMNS, gyr, strict=True) if i is not None})
        elif any(i is not None for i in gyr) or explicit:
            missing = [mapping.get(k, k) for k, i in zip(GYR_COLUMNS, gyr, strict=True) if i is None]
            raise CsvFormatError(
                f"{name}: line {header_line}: gyroscope column(s) {', '.join(map(repr, missing))} missing "
                f"(found: {found}); give all three gyroscope columns or none"
            )
        by_col: dict[int, str] = {}
        for key, i in self.index.items():
            if i in by_col:  # (--columns names one of them, or both)
                other = by_col[i]
                mapped, plain = (key, other) if key in mapping else (other, key)
                raise CsvFormatError(
                    f"{name}: --columns gives {other} and {key} the same column {self.names[i]!r}; give each its own"
                    if other in mapping and key in mapping else
                    f"{name}: --columns gives {mapped} the file's column {self.names[i]!r}, which {plain} reads "
                    f"by its name; map {plain} to another column too, or {mapped} to its own"
                )
            by_col[i] = key
        self.has_gyro = GYR_COLUMNS[0] in self.index
        self.keys = [TIME_COLUMN, *ACC_COLUMNS, *(GYR_COLUMNS if self.has_gyro else ())]
        self.cols = [self.index[k] for k in self.keys]


def _split_header(name: str, raw: bytes, pos: int = 0, line_no: int = 0) -> tuple[str, int, int]:
    """(header line, its 1-based number, byte offset where the data lines start): the first line from byte
    ``pos`` (line ``line_no + 1``) that is neither blank nor a comment."""
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        end = len(raw) if end < 0 else end
        line_no += 1
        line = raw[pos:end].rstrip(b"\r")
        try:
            text = line.decode("utf-8")  # comments before the header too
        except UnicodeDecodeError:
            raise CsvFormatError(
                f"{name}: line {line_no}: not UTF-8 text; save the file as UTF-8 (or ASCII) CSV"
            ) from None
        if line.strip() and not line.lstrip().startswith(b"#"):
            return text, line_no, end + 1
        pos = end + 1
    raise CsvFormatError(
        f"{name}: no header line (the file is empty or only comments); the first line must name the columns, "
        f"e.g. {','.join(DEFAULT_COLUMNS)}"
    )


HEADER_SEARCH_LINES = 50
"""How many lines a header may come after the first (a device's metadata above it, e.g. ``Device,WT901``),
within the first :data:`HEADER_SEARCH_BYTES` bytes."""
HEADER_SEARCH_BYTES = 1 << 16


def _header_layout(name: str, raw: bytes, columns: Mapping[str, str] | None) -> tuple[_Layout, int]:
    """The header's layout and the byte offset where the data lines start.

    The header is the first line that is neither blank nor a comment, unless that line lacks a required
    column and a later one (within :data:`HEADER_SEARCH_LINES` lines and :data:`HEADER_SEARCH_BYTES` bytes)
    has them all: the lines above it are then metadata an export wrote (device, date, units), skipped with
    a warning. Otherwise the first line's error stands, unless that line has no comma and a later one is
    separated by semicolons, tabs or bars (a line of metadata above such a file's header): that is said.
    """
    header, header_line, start = _split_header(name, raw)
    first_line, width = header_line, header.count(",") + 1
    try:
        return _Layout(name, header, header_line, columns), start
    except _MissingColumn as first_error:
        pos, line_no = start, header_line
        separator: _WrongSeparator | None = None  # the first later line's, if its fields are not comma-separated
        while line_no < HEADER_SEARCH_LINES and pos < min(len(raw), HEADER_SEARCH_BYTES):
            try:
                header, line_no, pos = _split_header(name, raw, pos, line_no)
            except CsvFormatError:
                break  # no more lines, or bytes that are not text
            try:
                layout = _Layout(name, header, line_no, columns)
            except _WrongSeparator as exc:
                separator = separator or exc
                continue
            except CsvFormatError:
                continue
            layout.lines_above = True
            return layout, pos
        if separator is not None and width == 1:
            raise separator from None
        widths = [ln.count(b",") + 1 for ln in raw[start:HEADER_SEARCH_BYTES].split(b"\n")[:20] if ln.strip()]
        common = max(set(widths), key=widths.count) if widths else width
        if common != width:
            raise CsvFormatError(
                f"{first_error}; or, if line {first_line} is not the header (it has {width} field"
                f"{'s' if width != 1 else ''}, the lines below it {common}), delete the lines above the header "
                "or start them with '#'"
            ) from None
        raise first_error from None


def _warn_lines_above(layout: _Layout) -> None:
    if layout.lines_above:
        n = layout.header_line - 1
        log.warning("%s: the header is line %d; the %d line%s above it (not column names) %s skipped",
                    layout.name, layout.header_line, n, "s" if n > 1 else "", "are" if n > 1 else "is")


def _decode(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CsvFormatError(
            f"{name}: line {line}: not UTF-8 text; save the file as UTF-8 (or ASCII) CSV"
        ) from None


def _scaled(cols: np.ndarray, scale: float) -> np.ndarray:
    """``cols * scale`` as a new C-ordered array (``x * 1.0`` is ``x``: just the copy), column by column:
    pandas' columns are contiguous, and copied one by one they take about half the time of one strided
    copy of all."""
    out = np.empty(cols.shape)
    for j in range(cols.shape[1]):
        if scale == 1.0:
            out[:, j] = cols[:, j]
        else:
            np.multiply(cols[:, j], scale, out=out[:, j])
    return out


CLOCK_TIME_AFTER_S = 86_400.0
"""A time column whose first value is later than this (one day, longer than any session) holds clock times,
e.g. Unix seconds: it is read as session time from its first sample. Earlier starts are session times as
they are (a file cut out of a longer session keeps its times)."""


def _to_batch(data: np.ndarray, layout: _Layout, acc_unit: str, gyr_unit: str, time_unit: str = "s") -> ImuBatch:
    t = np.ascontiguousarray(data[:, 0])
    scale = _TIME_SCALE[time_unit]
    if t.size and t[0] * scale > CLOCK_TIME_AFTER_S:
        # clock times (e.g. Unix seconds or ms): session time counts from the first sample (taken before the
        # scaling: fewer digits lost)
        t = t - t[0]
    if scale != 1.0:
        t = t * scale
    with np.errstate(over="ignore"):
        acc = _scaled(data[:, 1:4], _ACC_SCALE[acc_unit])
        gyr = _scaled(data[:, 4:7], _GYR_SCALE[gyr_unit]) if layout.has_gyro else None
    for what, v, key, option in (("accelerometer", acc, "acc_mps2", "--acc-unit"),
                                 ("gyroscope", gyr, "gyr_rads", "--gyr-unit")):  # fmt: skip
        if v is None:
            continue
        limit = PLAUSIBLE_LIMITS[key.rsplit("_", 1)[1]]
        if v.size == 0 or (float(v.max()) <= limit and float(v.min()) >= -limit):
            continue  # (two reductions, no temporaries: the common case costs a few ms per hour of data)
        bad = np.flatnonzero(~(np.abs(v) <= limit).all(axis=1))
        if bad.size:
            unit = key.rsplit("_", 1)[1].replace("mps2", "m/s²").replace("rads", "rad/s")
            raise CsvFormatError(
                f"{layout.name}: the {what} reads {float(np.max(np.abs(v[bad[0]]))):.3g} {unit} at t = "
                f"{float(t[bad[0]]):.6g} s, beyond any sensor's range ({limit:g} {unit}); check its unit "
                f"({option}) and the column names"
            )
    return ImuBatch(t_s=t, acc_mps2=acc, gyr_rads=gyr, time_base="session")


def _rows_have_header_width(raw: bytes, start: int, ncols: int) -> bool:
    """Vectorised check that every non-blank line after byte ``start`` has ``ncols`` fields (no quotes or
    comments in the data: those files go to the reference parser)."""
    if start >= len(raw):
        return True
    if raw.find(b"#", start) >= 0 or raw.find(b'"', start) >= 0:
        return False
    body = np.frombuffer(raw, dtype=np.uint8, offset=start)
    newlines = np.flatnonzero(body == ord("\n"))
    starts = np.r_[0, newlines + 1]
    ends = np.r_[newlines, body.size]
    commas = np.flatnonzero(body == ord(","))
    n_commas = np.asarray(np.searchsorted(commas, ends) - np.searchsorted(commas, starts))
    odd = np.flatnonzero(n_commas != ncols - 1)
    if (n_commas[odd] != 0).any():
        return False
    # lines without a comma are fine only when blank (a few, normally: the end of the file)
    return all(
        not raw[start + int(a) : start + int(b)].strip() for a, b in zip(starts[odd], ends[odd], strict=True)
    )


def _first_row_wider_than(buf: Any, start: int, ncols: int) -> bool:
    """Whether the first line after byte ``start`` of ``buf`` (bytes or an mmap) that is neither blank nor a
    comment has more than ``ncols`` fields (a comment line with that many is taken for one too: the reference
    parser then decides). pandas takes its columns from that line: a row of a million fields there made a
    frame of a million columns (gigabytes) before the reference parser could name the line; a later long row
    is an error for pandas at once."""
    end = start
    for _ in range(1000):  # (blank lines before it; after a thousand of them pandas decides)
        start = end
        nl = buf.find(b"\n", start)
        end = len(buf) if nl < 0 else nl + 1
        if start >= len(buf):
            return False
        pos = start
        for _ in range(ncols):  # (the ncols-th comma of the line makes one field too many)
            pos = buf.find(b",", pos, end) + 1
            if pos == 0:
                break
        else:
            return True
        line = buf[start:end].strip()
        if line and not line.startswith(b"#"):  # (a line that is neither blank nor a comment sets the width)
            return False
    return False


def _fast_parse(raw: bytes, skip: int, start: int, layout: _Layout) -> np.ndarray | None:
    """pandas' C parser over the lines after the first ``skip`` (byte ``start``); None if anything looks wrong
    (the reference parser then names the line)."""
    import io

    extra = len(layout.names) > len(layout.cols)
    if extra and not _rows_have_header_width(raw, start, len(layout.names)):
        return None
    if _first_row_wider_than(raw, start, len(layout.names)):
        return None
    return _pandas_values(io.BytesIO(raw), skip, layout, extra, comment=raw.find(b"#", start) >= 0)


def _pandas_values(source: Any, skip: int, layout: _Layout, extra: bool, comment: bool) -> np.ndarray | None:
    """pandas' C parser over ``source`` (a path or a file object) after its first ``skip`` lines: the
    design columns as one array, or None on any parser complaint or anything that looks wrong (the
    reference parser then names the line)."""
    import pandas as pd

    try:
        frame = pd.read_csv(
            source,
            header=None,
            skiprows=skip,
            sep=",",
            usecols=sorted(layout.cols) if extra else None,
            dtype=np.float64,
            comment="#" if comment else None,
            skip_blank_lines=True,
            engine="c",
            encoding="utf-8",
        )
    except Exception:  # noqa: BLE001 - any parser complaint: let the reference parser name the line
        return None
    if frame.shape[0] == 0 or (not extra and frame.shape[1] != len(layout.names)):
        return None
    values = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():  # NaN also marks short rows and empty cells
        return None
    order = [frame.columns.get_loc(c) for c in layout.cols]
    data = values if order == list(range(values.shape[1])) else values[:, order]
    t = data[:, 0]
    if t.shape[0] > 1 and not (np.diff(t) > 0).all():
        unwrapped = _unwrapped_time(layout.name, t)  # (a device counter that wrapped around, or None)
        if unwrapped is None:
            return None
        data = data.copy() if not data.flags.writeable else data
        data[:, 0] = unwrapped
    return data


def _fast_parse_file(p: Path, columns: Mapping[str, str] | None) -> tuple[np.ndarray, _Layout] | None:
    """The fast path on a plain file, read by pandas from its path (which pandas reads about twice as fast
    as the same bytes in memory): not compressed, no byte-order mark, carriage return, NUL or columns beyond
    the design's.
    None for any other file, or if anything looks wrong: the bytes path then decides, with the same result
    or the line-numbered error. A comment (``#``) after the header is such a thing (the bytes path reads
    it in one go, where pandas told of no comments would fail on it only after parsing up to it); comment
    lines before the header are skipped as the bytes path does."""
    import mmap

    try:
        with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if mm[:2] == GZIP_MAGIC or mm[:3] == b"\xef\xbb\xbf" or any(mm.find(b) >= 0 for b in (b"\x00", b"\r")):
                return None
            head = mm[:HEADER_SEARCH_BYTES]
            try:
                layout, start = _header_layout(str(p), head, columns)
            except CsvFormatError:
                return None
            # (the header line may go on past the head)
            if start > len(head) or mm.find(b"#", start) >= 0 or _first_row_wider_than(mm, start, len(layout.names)):
                return None
    except (OSError, ValueError):  # unreadable, or empty (mmap of 0 bytes)
        return None
    if len(layout.names) > len(layout.cols):
        return None
    data = _pandas_values(p, layout.header_line, layout, extra=False, comment=False)
    return None if data is None else (data, layout)


def _is_number(text: str) -> float | None:
    if not text or "_" in text or not text.isascii():  # float() also reads "1_0" and non-ASCII digits
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _csv_fields(line: str) -> list[str]:
    """The fields of a line with quotes (RFC 4180: a quoted field may hold commas, ``#`` and doubled quotes
    ``""``; spaces before a field's opening quote are skipped)."""
    import csv

    return next(csv.reader([line], skipinitialspace=True))


def _line_fields(line: str) -> list[str] | None:
    """The fields of a data line up to a ``#`` outside quotes (:func:`_csv_fields` where it has quotes, a
    plain split on commas otherwise); None if nothing is left (a blank or comment line)."""
    quoted = '"' in line
    hash_at = line.find("#")
    while quoted and hash_at >= 0 and line.count('"', 0, hash_at) % 2:
        hash_at = line.find("#", hash_at + 1)  # inside quotes: text, not a comment
    if hash_at >= 0:
        line = line[:hash_at]
    if not line.strip():
        return None
    return _csv_fields(line) if quoted else line.split(",")


WRAP_SHARE = 1.0 / 16.0
"""A device counter used as the time column (Movella's ``SampleTimeFine``, µs in 32 bits; a packet counter in
16) wraps around to 0: a time that drops from the top ``WRAP_SHARE`` of a power-of-two range (at least 2^8)
to its bottom ``WRAP_SHARE``, both whole numbers, is read as such a wrap (the range is the smallest power of
two above the values before the first drop). Any other drop is an error."""


def _counter_modulus(top: float) -> float:
    """The range of a counter whose values reached ``top``: the smallest power of two above it, at least 2^8
    (infinite, so that no drop is a wrap, for a negative ``top`` or one past the floats' whole numbers)."""
    if not 0.0 <= top < 2.0**53:
        return math.inf
    return float(2 ** max(8, math.ceil(math.log2(top + 1.0))))


def _is_wrap(before: float, after: float, modulus: float) -> bool:
    """Whether a drop of the time column from ``before`` to ``after`` is a wrap of a counter of ``modulus``."""
    return (before.is_integer() and after.is_integer() and 0.0 <= after < modulus * WRAP_SHARE
            and modulus * (1.0 - WRAP_SHARE) <= before < modulus)  # fmt: skip


def _unwrapped_time(name: str, t: np.ndarray) -> np.ndarray | None:
    """The time column ``t`` with a counter's wraps undone (:data:`WRAP_SHARE`, said in a warning); None if
    it does not strictly increase otherwise (the reference parser then names the line)."""
    drops = np.flatnonzero(~(np.diff(t) > 0))
    if drops.size == 0:
        return t
    modulus = _counter_modulus(float(t[: drops[0] + 1].max()))
    if not all(_is_wrap(a, b, modulus) for a, b in zip(t[drops].tolist(), t[drops + 1].tolist(), strict=True)):
        return None
    wraps = np.zeros(t.shape[0])
    wraps[drops + 1] = modulus
    out = t + np.cumsum(wraps)
    if not (np.diff(out) > 0).all():
        return None
    _say_wraps(name, drops.size, modulus)
    return out


def _say_wraps(name: str, n: int, modulus: float) -> None:
    log.warning("%s: the time column starts again from 0 %s (a device counter of 2^%d): read on as one "
                "increasing time", name, "once" if n == 1 else f"{n} times", round(math.log2(modulus)))


def _reference_parse(body: str, layout: _Layout) -> np.ndarray:
    """Line-by-line parser: the same result as the fast path, or the first problem by line number."""
    name = layout.name
    ncols = len(layout.names)
    rows: list[list[float]] = []
    line_no = layout.header_line
    prev_line = 0
    # a device counter's wraps (_unwrapped_time): the highest time yet, the last one, the counter's range
    # (fixed at the first wrap), the time added and the wraps so far
    top, prev_raw, modulus, offset, n_wraps = -math.inf, -math.inf, 0.0, 0.0, 0
    for line in body.split("\n"):
        line_no += 1
        fields = _line_fields(line)
        if fields is None:
            continue  # (blank or a comment)
        if len(fields) != ncols:
            raise CsvFormatError(
                f"{name}: line {line_no}: {len(fields)} field{'s' if len(fields) != 1 else ''}, but the header "
                f"(line {layout.header_line}) "
                f"has {ncols}; every row needs one value per column"
            )
        row = []
        for key, i in zip(layout.keys, layout.cols, strict=True):
            cell = _cell(fields[i])
            col = layout.names[i]
            if not cell:
                raise CsvFormatError(
                    f"{name}: line {line_no}: empty cell in column {col!r} ({key}); fill it or delete the row"
                )
            value = _is_number(cell)
            if value is None:
                shown = cell if len(cell) <= 30 else cell[:27] + "..."
                raise CsvFormatError(
                    f"{name}: line {line_no}: {shown!r} in column {col!r} ({key}) is not a number; "
                    "fix it or delete the row"
                )
            if not math.isfinite(value):
                raise CsvFormatError(
                    f"{name}: line {line_no}: {cell!r} in column {col!r} ({key}) is not a finite number; "
                    "delete the row or fill in a measured value"
                )
            row.append(value)
        raw = row[0]
        if not raw > prev_raw:
            m = modulus or _counter_modulus(top)
            if not _is_wrap(prev_raw, raw, m):
                raise CsvFormatError(
                    f"{name}: line {line_no}: time {raw!r} is not after the previous row's {prev_raw!r} "
                    f"(line {prev_line}); timestamps must strictly increase: sort the rows and remove duplicates"
                )
            modulus, offset, n_wraps = m, offset + m, n_wraps + 1
        top, prev_raw, prev_line = max(top, raw), raw, line_no
        row[0] = raw + offset
        rows.append(row)
    if not rows:
        raise CsvFormatError(
            f"{name}: line {layout.header_line}: no data rows after this header line; "
            "the file needs one row of numbers per sample"
        )
    if n_wraps:
        _say_wraps(name, n_wraps, modulus)
    return np.asarray(rows, dtype=np.float64)


def _check_units(acc_unit: str, gyr_unit: str, time_unit: str = "s") -> None:
    if time_unit not in _TIME_SCALE:
        raise ValueError(f"time_unit must be one of {', '.join(_TIME_SCALE)}, got {time_unit!r}")
    if acc_unit not in _ACC_SCALE:
        raise ValueError(f"acc_unit must be one of {', '.join(_ACC_SCALE)}, got {acc_unit!r}")
    if gyr_unit not in _GYR_SCALE:
        raise ValueError(f"gyr_unit must be one of {', '.join(_GYR_SCALE)}, got {gyr_unit!r}")


def parse_imu_csv_text(
    text: str | bytes,
    columns: Mapping[str, str] | None = None,
    acc_unit: AccUnit = "mps2",
    gyr_unit: GyrUnit = "rads",
    name: str = "<csv>",
    time_unit: TimeUnit = "s",
) -> ImuBatch:
    """``read_imu_csv`` on text already in memory (``name`` appears in error messages; bytes of a
    gzip-compressed file are decompressed first)."""
    _check_units(acc_unit, gyr_unit, time_unit)
    raw = text.encode("utf-8", errors="surrogatepass") if isinstance(text, str) else _uncompressed(name, bytes(text))
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    layout, start = _header_layout(name, raw, columns)
    data = _fast_parse(raw, layout.header_line, start, layout) if b"\x00" not in raw else None
    if data is None:
        _decode(name, raw)  # names the line of any bytes that are not UTF-8
        data = _reference_parse(raw[start:].decode("utf-8"), layout)
    batch = _to_batch(data, layout, acc_unit, gyr_unit, time_unit)
    _warn_lines_above(layout)
    return batch


def read_imu_csv(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    acc_unit: AccUnit = "mps2",
    gyr_unit: GyrUnit = "rads",
    time_unit: TimeUnit = "s",
) -> ImuBatch:
    """Read IMU samples from a CSV file.

    Parameters
    ----------
    path : str or Path
        The file, plain or gzip-compressed (``run.csv.gz``). A header line names the columns; lines starting
        with ``#`` and blank lines are skipped, ``#`` also starts a comment at the end of a line.
    columns : mapping, optional
        Design name -> the file's column name, for the names that differ (see ``parse_columns_option``).
    acc_unit : {"mps2", "g"}
        Unit of the accelerometer columns (converted to m/s²).
    gyr_unit : {"rads", "dps"}
        Unit of the gyroscope columns (converted to rad/s).
    time_unit : {"s", "ms", "us", "ns"}
        Unit of the time column (converted to s).

    Returns
    -------
    ImuBatch
        ``t_s`` (N,) s, session time (clock times, see :data:`CLOCK_TIME_AFTER_S`, counted from the first
        sample), ``acc_mps2`` (N, 3), ``gyr_rads`` (N, 3) or None without gyroscope columns,
        ``time_base="session"``.

    Raises
    ------
    CsvFormatError
        Unreadable file, missing columns, ragged rows, empty or non-numeric cells, NaN/inf, timestamps that do
        not strictly increase, a damaged gzip file, a zip archive or a spreadsheet workbook; one line naming
        the file, the line number and the fix.
    """
    p = Path(path)
    _check_units(acc_unit, gyr_unit, time_unit)
    fast = _fast_parse_file(p, columns)
    if fast is not None:
        _warn_lines_above(fast[1])
        return _to_batch(fast[0], fast[1], acc_unit, gyr_unit, time_unit)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise CsvFormatError(f"{p}: cannot read the file ({exc.strerror or exc}); check the path") from None
    return parse_imu_csv_text(raw, columns=columns, acc_unit=acc_unit, gyr_unit=gyr_unit, name=str(p),
                              time_unit=time_unit)


LONG_JUMP_S = 3600.0
"""A jump of the time column longer than this (an hour) is more likely a clock reset or joined recordings
than a lost link: still a gap, but the reader warns."""

GAP_FACTOR = 1.5
"""A time step over this many median sample intervals is a gap (samples lost), in regularly timed data."""

GAP_SIGMAS = 6.0
"""In jittered time stamps a gap must also stand this many robust standard deviations of the intervals
(1.4826 x their median absolute deviation) above the median interval."""


def split_at_gaps(batch: ImuBatch) -> list[ImuBatch]:
    """The batch cut where its time stamps jump: a step over ``GAP_FACTOR`` median sample intervals and
    over ``GAP_SIGMAS`` robust deviations of the intervals above the median. Each part after a jump has
    ``gap_before`` and ``n_lost`` (the missing sample periods, at least 1).

    A CSV has no packet counter: its time column (the device's time, or the session time of a recording)
    is where its gaps are. The pipeline then bridges short ones and restarts at long ones, and no step
    is computed across them. Jittered stamps (host-timed exports) do not look like gaps: a long interval
    there is as common as a short one."""
    t = batch.t_s
    if t.shape[0] < 3:
        return [batch]
    dt = np.diff(t)
    if float(dt.max()) <= GAP_FACTOR * float(dt.min()):
        return [batch]  # no interval is GAP_FACTOR times the median, which is at least the shortest one
    med = float(np.median(dt))
    dev = 1.4826 * float(np.median(np.abs(dt - med)))
    cuts = np.flatnonzero(dt > max(GAP_FACTOR * med, med + GAP_SIGMAS * dev)) + 1
    if cuts.size == 0 or not med > 0:
        return [batch]
    edges = [0, *cuts.tolist(), t.shape[0]]
    out = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        part = batch.slice(a, b)
        if a > 0:
            lost = max(1, int(round((t[a] - t[a - 1]) / med)) - 1)
            part = dataclasses.replace(part, gap_before=True, n_lost=lost)  # (a later slice carries no loss)
        out.append(part)
    return out


def format_imu_csv(batch: ImuBatch, block: int = 2000) -> str:
    """The CSV text of a batch: design columns, ``%.17g`` (every float64 round-trips exactly)."""
    if batch.acc_mps2 is None:
        raise ValueError("format_imu_csv needs accelerometer data (acc_mps2)")
    parts = [batch.t_s[:, None], batch.acc_mps2]
    names = [TIME_COLUMN, *ACC_COLUMNS]
    if batch.gyr_rads is not None:
        parts.append(batch.gyr_rads)
        names += GYR_COLUMNS
    data = np.hstack(parts)
    width = data.shape[1]
    row_fmt = ",".join(["%.17g"] * width) + "\n"
    out = [",".join(names) + "\n"]
    full = row_fmt * block
    n = data.shape[0]
    for i in range(0, n, block):  # one string-format call per block of rows, not per value
        chunk = data[i : i + block]
        fmt = full if len(chunk) == block else row_fmt * len(chunk)
        out.append(fmt % tuple(chunk.ravel().tolist()))
    return "".join(out)


def write_imu_csv(path: str | Path, batch: ImuBatch) -> None:
    """Write a batch as CSV with the design's columns (gyroscope columns only if the batch has them)."""
    Path(path).write_text(format_imu_csv(batch), encoding="utf-8")


class CsvSource(Source):
    """A CSV file as a ``Source``: the samples in chunks, optionally paced in real time.

    Parameters
    ----------
    path : str or Path
        The CSV file (read at ``open``; a bad file raises ``CsvFormatError`` there).
    columns, acc_unit, gyr_unit, time_unit
        As for ``read_imu_csv``.
    chunk : int
        Samples per batch.
    pace : float
        0 = as fast as possible, 1.0 = real time.
    """

    def __init__(
        self,
        path: str | Path,
        columns: Mapping[str, str] | None = None,
        acc_unit: AccUnit = "mps2",
        gyr_unit: GyrUnit = "rads",
        chunk: int = 10,
        pace: float = 0.0,
        time_unit: TimeUnit = "s",
    ) -> None:
        _check_units(acc_unit, gyr_unit, time_unit)
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
        if not (isinstance(pace, int | float) and math.isfinite(pace) and pace >= 0):
            raise ValueError(f"pace must be >= 0 (0 = as fast as possible), got {pace!r}")
        self.path = Path(path)
        self.columns = dict(columns) if columns else None
        self.acc_unit = acc_unit
        self.gyr_unit = gyr_unit
        self.time_unit = time_unit
        self.chunk = chunk
        self.pace = float(pace)
        self.batch: ImuBatch | None = None
        self._parts: list[ImuBatch] = []
        self.info = SourceInfo(name=self.path.name, protocol="csv", rate_hz=0.0, address=str(self.path))
        self._closed = False

    async def open(self) -> None:
        batch = await asyncio.to_thread(
            read_imu_csv, self.path, self.columns, self.acc_unit, self.gyr_unit, self.time_unit
        )
        self.batch = batch
        # cut where the time column jumps (lost samples): the sample rate is that of the parts between the
        # cuts (their intervals over their span), and the pipeline bridges or restarts at the cuts
        self._parts = split_at_gaps(batch)
        for before, part in zip(self._parts[:-1], self._parts[1:], strict=True):
            t0, t1 = float(before.t_s[-1]), float(part.t_s[0])
            if t1 - t0 > LONG_JUMP_S:
                log.warning(
                    "%s: the time column jumps by %.6g s after t = %.6g s; taken as lost samples (if the file "
                    "joins separate recordings, analyse them apart)", self.path.name, t1 - t0, t0,
                )
        rate = span_rate_hz(self._parts) or 0.0
        meta: dict[str, Any] = {"samples": len(batch), "acc_unit": self.acc_unit, "gyr_unit": self.gyr_unit,
                                "time_unit": self.time_unit}
        if self.columns:
            meta["columns"] = dict(self.columns)
        self.info = SourceInfo(
            name=self.path.name,
            protocol="csv",
            rate_hz=rate,
            has_gyro=batch.has_gyro,
            address=str(self.path),
            metadata=meta,
        )
        self._closed = False

    async def close(self) -> None:
        self._closed = True

    async def events(self) -> AsyncIterator[SourceEvent]:
        if self.batch is None:
            await self.open()
        batch = self.batch
        if batch is None:  # pragma: no cover - open() either fills it or raises
            return
        yield SourceStatus("connected", float(batch.t_s[0]), f"reading {self.path.name}")
        start = time.monotonic()
        t0 = float(batch.t_s[0])
        # chunks never straddle a gap of the time column: the chunk after one carries it
        parts = [(seg, k) for seg in self._parts for k in range(0, len(seg), self.chunk)]
        for j, (seg, k) in enumerate(parts):
            if self._closed:
                return
            part = seg.slice(k, min(k + self.chunk, len(seg)))
            if part.gap_before:
                yield gap_status(float(part.t_s[0]), part.n_lost, f"{part.n_lost} samples missing in the time column",
                                 estimated=True)
            if self.pace > 0:
                delay = start + (float(part.t_s[-1]) - t0) / self.pace - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif j % 64 == 0:
                await asyncio.sleep(0)
            yield part
        yield SourceStatus("stopped", float(batch.t_s[-1]), f"end of {self.path.name}")


__all__ = [
    "ACC_COLUMNS",
    "DEFAULT_COLUMNS",
    "GYR_COLUMNS",
    "TIME_COLUMN",
    "CsvFormatError",
    "CsvSource",
    "format_imu_csv",
    "parse_columns_option",
    "parse_imu_csv_text",
    "read_imu_csv",
    "split_at_gaps",
    "write_imu_csv",
]
