"""CSV import: exact round trips, the fast and the reference parsers agree, every bad input gives one
line naming the file, the line and the fix; fuzzed text never raises anything else."""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pelvimon.firmware_protocols.batch import G_MPS2, ImuBatch
from pelvimon.sensors import csv_source
from pelvimon.sensors.csv_source import (
    DEFAULT_COLUMNS,
    CsvFormatError,
    CsvSource,
    parse_columns_option,
    parse_imu_csv_text,
    read_imu_csv,
    split_at_gaps,
    write_imu_csv,
)
from pelvimon.sensors.simulator import SimParams, simulate

HEADER = ",".join(DEFAULT_COLUMNS)


def _reference(text: str, columns: dict | None = None) -> np.ndarray:
    """The line-by-line parser alone (bypassing the fast path)."""
    raw = text.encode()
    header, line, start = csv_source._split_header("x.csv", raw)
    layout = csv_source._Layout("x.csv", header, line, columns)
    return csv_source._reference_parse(raw[start:].decode(), layout)


def test_round_trip_is_exact(tmp_path: Path) -> None:
    sim = simulate(SimParams(seconds=20.0, seed=9))
    path = tmp_path / "run.csv"
    write_imu_csv(path, sim.batch)
    assert path.read_text().splitlines()[0] == HEADER
    back = read_imu_csv(path)
    assert back.time_base == "session"
    assert np.array_equal(back.t_s, sim.batch.t_s)
    assert np.array_equal(back.acc_mps2, sim.batch.acc_mps2)
    assert np.array_equal(back.gyr_rads, sim.batch.gyr_rads)
    # the reference parser reads the same numbers
    ref = _reference(path.read_text())
    assert np.array_equal(ref[:, 0], back.t_s)
    assert np.array_equal(ref[:, 1:4], back.acc_mps2)


def test_accelerometer_only_round_trip(tmp_path: Path) -> None:
    t = np.arange(50) / 100.0
    acc = np.random.default_rng(1).normal(size=(50, 3))
    path = tmp_path / "acc.csv"
    write_imu_csv(path, ImuBatch(t_s=t, acc_mps2=acc, time_base="session"))
    back = read_imu_csv(path)
    assert back.gyr_rads is None
    assert np.array_equal(back.acc_mps2, acc)


def test_other_names_units_comments_blank_lines_crlf_bom_quotes_and_extra_columns(tmp_path: Path) -> None:
    text = (
        "\ufeff# exported by some app\n"
        "\n"
        'time,"ax",ay,az,gx,gy,gz,label\r\n'
        "0.00,0,0,1,0,0,90,1\r\n"
        "\r\n"
        "0.01, 0.5 ,0,1,180,0,0,2  # a comment\r\n"
        "# a comment line\r\n"
        '0.02,"1",0,-1,0,-90,0,3\r\n'
    )
    path = tmp_path / "other.csv"
    path.write_bytes(text.encode("utf-8"))
    columns = parse_columns_option(
        "t_s=time,acc_x_mps2=ax,acc_y_mps2=ay,acc_z_mps2=az,gyr_x_rads=gx,gyr_y_rads=gy,gyr_z_rads=gz"
    )
    b = read_imu_csv(path, columns=columns, acc_unit="g", gyr_unit="dps")
    assert np.array_equal(b.t_s, [0.0, 0.01, 0.02])
    assert np.allclose(
        b.acc_mps2, np.array([[0, 0, 1], [0.5, 0, 1], [1, 0, -1]]) * G_MPS2, rtol=0, atol=1e-15
    )
    assert np.allclose(b.gyr_rads, np.radians([[0, 0, 90], [180, 0, 0], [0, -90, 0]]), rtol=0, atol=1e-15)
    ref = _reference(text.replace("\r\n", "\n").lstrip("\ufeff"), columns)
    assert np.array_equal(ref[:, 0], b.t_s)


def test_text_columns_are_ignored_when_not_needed(monkeypatch) -> None:
    text = "note," + HEADER + "\nhello,0,1,2,3,4,5,6\n\n  \nworld,1,1,2,3,4,5,6\n"

    def no_reference(*args: object) -> None:
        raise AssertionError("a clean file with a text column should not need the reference parser")

    monkeypatch.setattr(csv_source, "_reference_parse", no_reference)
    b = parse_imu_csv_text(text)
    assert np.array_equal(b.t_s, [0.0, 1.0]) and np.array_equal(b.gyr_rads[1], [4.0, 5.0, 6.0])


@pytest.mark.parametrize("row", ["1,1,2,3,4,5,6", "x,1,1,2,3,4,5,6,7", "y,1,1,2,3,4,5,"])
def test_rows_short_or_long_in_an_ignored_column_are_still_ragged(row: str) -> None:
    text = "note," + HEADER + "\nhello,0,1,2,3,4,5,6\n" + row + "\n"
    with pytest.raises(CsvFormatError, match="line 3: .*(fields|empty cell)"):
        parse_imu_csv_text(text)
    # the same without the ignored column: short rows are caught too
    with pytest.raises(CsvFormatError, match=r"line 3: 7 fields, but the header \(line 1\) has 8"):
        parse_imu_csv_text(HEADER + ",temp\n0,1,2,3,4,5,6,20\n1,1,2,3,4,5,6\n")
    with pytest.raises(CsvFormatError, match=r"line 3: 1 field, but the header \(line 1\) has 8"):
        parse_imu_csv_text(HEADER + ",temp\n0,1,2,3,4,5,6,20\n1\n")


BAD = [
    # (text, line, fragment of the message)
    (HEADER + "\n0,1,2,3,4,5,6\n0.1,1,2,3,4,5\n", 3, "6 fields"),
    (HEADER + "\n0,1,2,3,4,5,6\n0.1,1,2,3,4,5,6,7\n", 3, "8 fields"),
    (HEADER + "\n0,1,2,3,4,5,6\n0.1,1,,3,4,5,6\n", 3, "empty cell in column 'acc_y_mps2'"),
    (HEADER + "\n0,1,2,3,4,5,6\n\n0.1,1,abc,3,4,5,6\n", 4, "'abc'"),
    (HEADER + "\n0,1,2,3,4,5,6\n0.1,1,2,nan,4,5,6\n", 3, "not a finite number"),
    (HEADER + "\n0,1,2,3,4,5,6\n0.1,1,2,3,4,inf,6\n", 3, "not a finite number"),
    (HEADER + "\n0,1,2,3,4,5,6\n0.1,1,2,3,4,NA,6\n", 3, "'NA'"),
    (HEADER + "\n0,1,2,3,4,5,6\n0,1,2,3,4,5,6\n", 3, "strictly increase"),
    (HEADER + "\n0,1,2,3,4,5,6\n0.2,1,2,3,4,5,6\n# c\n0.1,1,2,3,4,5,6\n", 5, "line 3"),
    (HEADER + "\n0,1,2,3,4,5,6\n0.1,1,2,1_0,4,5,6\n", 3, "'1_0'"),
    (
        "# only\n\nt_s,acc_x_mps2,acc_y_mps2,acc_z\n0,1,2,3\n",
        3,
        "found: 't_s', 'acc_x_mps2', 'acc_y_mps2', 'acc_z'",
    ),
    ("t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2,gyr_x_rads\n0,1,2,3,4\n", 1, "give all three gyroscope columns"),
    ("t_s,t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2\n0,1,2,3,4\n", 1, "appears twice"),
    (HEADER + "\n", 1, "no data rows"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD)
def test_bad_files_name_file_line_and_fix(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CsvFormatError) as info:
        read_imu_csv(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: line {line}:"), msg
    assert fragment in msg
    assert ";" in msg  # ... and what to do


def test_bad_bytes_and_empty_and_missing_files(tmp_path: Path) -> None:
    p = tmp_path / "latin1.csv"
    p.write_bytes((HEADER + "\n0,1,2,3,4,5,6\n0.1,1,2,3,4,5\xb06\n").encode("latin-1"))
    with pytest.raises(CsvFormatError, match=r"line 3: not UTF-8"):
        read_imu_csv(p)
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(CsvFormatError, match="no header line"):
        read_imu_csv(p)
    with pytest.raises(CsvFormatError, match="cannot read the file"):
        read_imu_csv(tmp_path / "nope.csv")


def test_a_file_without_a_header_says_so(tmp_path: Path) -> None:
    p = tmp_path / "bare.csv"
    for first in ("0.000,0.1,0.2,9.8,0.01,0.02,0.03", "0.000,0.1,0.2,9.8,0.01,0.02,"):  # (an empty cell too)
        p.write_text(f"{first}\n0.005,0.1,0.2,9.8,0.01,0.02,0.03\n")
        with pytest.raises(CsvFormatError) as exc:
            read_imu_csv(p)
        msg = str(exc.value)
        assert "line 1: the file has no header line (the first line holds numbers)" in msg
        assert "t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2,gyr_x_rads" in msg and "found" not in msg
    # numbers as names (pandas' header of an unnamed array) are names when --columns maps them
    p.write_text("0,1,2,3,4,5,6\n0.000,0.1,0.2,9.8,0.01,0.02,0.03\n0.005,0.1,0.2,9.8,0.01,0.02,0.04\n")
    mapped = read_imu_csv(p, columns=dict(zip(csv_source.DEFAULT_COLUMNS, "0123456", strict=True)))
    np.testing.assert_array_equal(mapped.gyr_rads[:, 2], [0.03, 0.04])
    # a header with one numeric name is a header
    with pytest.raises(CsvFormatError, match=r"no column 't_s' for t_s \(found: 't', '1'"):
        parse_imu_csv_text("t,1,2,3\n0,1,2,3\n")


def test_missing_mapped_column_lists_the_columns_found() -> None:
    with pytest.raises(CsvFormatError, match=r"no column 'time' for t_s \(found: 't', 'ax'"):
        parse_imu_csv_text("t,ax,ay,az\n0,1,2,3\n", columns={"t_s": "time"})


def test_two_channels_cannot_read_one_column(tmp_path: Path) -> None:
    """acc_x mapped onto the file's acc_y column, which acc_y still read by its name: both channels read the
    same numbers, and the analysis ran on them without a word."""
    text = HEADER + "\n0,1,2,3,4,5,6\n0.005,1,2,3,4,5,6\n"
    with pytest.raises(CsvFormatError, match=r"gives acc_x_mps2 the file's column 'acc_y_mps2', which acc_y_mps2 reads "
                                             r"by its name; map acc_y_mps2 to another column too"):
        parse_imu_csv_text(text, columns={"acc_x_mps2": "acc_y_mps2"})
    with pytest.raises(CsvFormatError, match="gives acc_x_mps2 and gyr_z_rads the same column 'acc_y_mps2'"):
        parse_imu_csv_text(text, columns={"acc_x_mps2": "acc_y_mps2", "acc_y_mps2": "acc_x_mps2",
                                          "gyr_z_rads": "acc_y_mps2"})
    p = tmp_path / "x.csv"
    p.write_text(text)
    with pytest.raises(CsvFormatError, match="which acc_y_mps2 reads by its name"):
        read_imu_csv(p, columns={"acc_x_mps2": "acc_y_mps2"})  # (the fast path: the same layout)
    swapped = parse_imu_csv_text(text, columns={"acc_x_mps2": "acc_y_mps2", "acc_y_mps2": "acc_x_mps2"})
    np.testing.assert_array_equal(swapped.acc_mps2[0], [2.0, 1.0, 3.0])


@pytest.mark.parametrize("eol", ["\n", "\r\n"])  # (the file read by pandas from its path; from its bytes)
@pytest.mark.parametrize("comment", [False, True])  # (a comment line before it: pandas skips it)
def test_a_first_row_of_a_million_fields_is_named_without_gigabytes(tmp_path: Path, eol: str, comment: bool) -> None:
    """pandas takes its columns from the first row: a row of a million fields there (2 MB) made a frame of a
    million columns, a gigabyte and half a minute, twice, before the reference parser named the line (after
    a comment line, 24 GB)."""
    import tracemalloc

    p = tmp_path / "wide.csv"
    above = ["# exported by a logger"] if comment else [""]
    p.write_text(eol.join([HEADER, *above, "1," * 1_000_000, "0,1,2,3,4,5,6", "0.005,1,2,3,4,5,6", ""]), newline="")
    tracemalloc.start()
    try:
        with pytest.raises(CsvFormatError, match=r"line 3: 1000001 fields, but the header \(line 1\) has 7"):
            read_imu_csv(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6, peak


def test_units_and_columns_options_are_checked() -> None:
    with pytest.raises(ValueError, match="acc_unit"):
        parse_imu_csv_text(HEADER + "\n0,1,2,3,4,5,6\n", acc_unit="furlongs")  # type: ignore[arg-type]
    assert parse_columns_option(" t_s = time , acc_x_mps2=ax") == {"t_s": "time", "acc_x_mps2": "ax"}
    for bad, fragment in (
        ("time", "NAME=FILE_COLUMN"),
        ("t=time", "unknown column 't'"),
        ("t_s=", "after '='"),
        ("t_s=a,t_s=b", "twice"),
        ("", "empty"),
    ):
        with pytest.raises(ValueError, match=fragment):
            parse_columns_option(bad)


def test_csv_source_streams_chunks(tmp_path: Path) -> None:
    sim = simulate(SimParams(seconds=3.0))
    path = tmp_path / "s.csv"
    write_imu_csv(path, sim.batch)

    async def collect() -> tuple[list[ImuBatch], CsvSource]:
        src = CsvSource(path, chunk=16)
        out = []
        async with src:
            assert src.info.protocol == "csv" and src.info.has_gyro
            assert src.info.rate_hz == pytest.approx(200.0, rel=0.01)
            async for ev in src:
                if isinstance(ev, ImuBatch):
                    out.append(ev)
        return out, src

    batches, _ = asyncio.run(collect())
    assert max(len(b) for b in batches) == 16
    whole = ImuBatch.concat(batches)
    assert np.array_equal(whole.acc_mps2, sim.batch.acc_mps2)


def test_csv_source_reports_a_bad_file_at_open(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "\n0,1,2,3,4,5,6\n0,1,2,3,4,5,6\n")

    async def go() -> None:
        async with CsvSource(path):
            pass

    with pytest.raises(CsvFormatError, match="line 3"):
        asyncio.run(go())


# --- fuzzing ---------------------------------------------------------------------------------------------

_cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-5, 5).map(str),
    st.sampled_from(["", " ", "nan", "x", '"1"', "1e999", "#", "1,2", "\r", "\x00", "é", "1_0", "NA",
                     "#N/A", "#NA", "1.#IND", "-1.#QNAN", "1 # note", "# 1,2,3"]),
)
_rows = st.lists(st.lists(_cells, min_size=5, max_size=9).map(",".join), max_size=8)


def _session_times(t: np.ndarray) -> np.ndarray:
    """A file's times as session times: counted from the first one when they are clock times."""
    return t - t[0] if t.size and t[0] > csv_source.CLOCK_TIME_AFTER_S else t


def _check_outcome(text: str | bytes) -> None:
    try:
        b = parse_imu_csv_text(text, name="fuzz.csv")
    except CsvFormatError as exc:
        msg = str(exc)
        assert msg.startswith("fuzz.csv: ") and "\n" not in msg
        return
    assert isinstance(b, ImuBatch)
    assert len(b) >= 1 and np.isfinite(b.acc_mps2).all() and np.isfinite(b.t_s).all()
    assert (np.diff(b.t_s) > 0).all()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text(text: str) -> None:
    _check_outcome(text)
    _check_outcome(HEADER + "\n" + text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows, st.sampled_from([HEADER, HEADER + ",x", "t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2", "a,b"]))
def test_fuzz_csv_like_rows(rows: list[str], header: str) -> None:
    text = header + "\n" + "\n".join(rows) + "\n"
    _check_outcome(text)
    # whenever the file is accepted, the fast path and the reference parser agree exactly
    try:
        fast = parse_imu_csv_text(text)
    except CsvFormatError:
        return
    ref = _reference(text)
    assert np.array_equal(_session_times(ref[:, 0]), fast.t_s)
    assert np.array_equal(ref[:, 1:4], fast.acc_mps2)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check_outcome(data)
    _check_outcome(HEADER.encode() + b"\n" + data)


def _outcome(read) -> tuple:  # noqa: ANN001
    try:
        b = read()
    except CsvFormatError as exc:
        return ("error", str(exc))
    gyr = None if b.gyr_rads is None else b.gyr_rads.tobytes()
    return ("ok", b.t_s.tobytes(), b.acc_mps2.tobytes(), gyr)


_file_rows = st.lists(st.lists(st.one_of(st.floats(width=32).map(repr), _cells), min_size=4, max_size=8)
                      .map(",".join), max_size=6)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["", "\n", "\n\n"]),
       st.sampled_from([HEADER, HEADER + ",x", "t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2", "a,b", " t_s , " + HEADER[5:]]),
       _file_rows, st.sampled_from(["", "\n", "\n\n\n"]))
def test_fuzz_file_fast_path_equals_bytes_path(tmp_path: Path, lead: str, header: str, rows: list[str],
                                               tail: str) -> None:
    """A file read from its path (pandas on the path for plain files) gives the same samples, or the same
    error, as its bytes read in memory."""
    raw = (lead + header + "\n" + "\n".join(rows) + tail).encode("utf-8", errors="surrogatepass")
    path = tmp_path / "f.csv"
    path.write_bytes(raw)
    assert _outcome(lambda: read_imu_csv(path)) == _outcome(lambda: parse_imu_csv_text(raw, name=str(path)))


def test_plain_file_takes_the_path_fast_path(tmp_path: Path) -> None:
    sim = simulate(SimParams(seconds=2.0, seed=4))
    path = tmp_path / "plain.csv"
    write_imu_csv(path, sim.batch)
    got = csv_source._fast_parse_file(path, None)
    assert got is not None and np.array_equal(got[0][:, 1:4], sim.batch.acc_mps2)
    # anything unusual goes to the bytes path, which then decides
    for extra in (b"# note\n", b"\r\n"):
        other = tmp_path / "other.csv"
        other.write_bytes(path.read_bytes() + extra)
        assert csv_source._fast_parse_file(other, None) is None
        assert np.array_equal(read_imu_csv(other).acc_mps2, sim.batch.acc_mps2)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert csv_source._fast_parse_file(empty, None) is None


def test_comments_take_the_path_fast_path_only_before_the_header(tmp_path: Path) -> None:
    """Comment lines before the header are skipped by pandas as by the bytes path; a comment among the
    data (whole line, end of line, or one that reads like pandas' NA words) makes pandas fail, and the
    bytes path reads the file."""
    sim = simulate(SimParams(seconds=1.0, seed=5))
    text = csv_source.format_imu_csv(sim.batch)
    head, _, body = text.partition("\n")
    lines = body.splitlines()
    path = tmp_path / "c.csv"
    path.write_text("# exported by hand\n#,a,b\n" + text)
    got = csv_source._fast_parse_file(path, None)
    assert got is not None and got[0].tobytes() == csv_source._fast_parse_file(_plain(tmp_path, text), None)[0].tobytes()
    for commented in (
        [*lines[:50], "# a pause", *lines[50:]],
        [*lines[:50], lines[50] + " # note", *lines[51:]],
        [*lines[:50], "#N/A,#N/A,#N/A,#N/A,#N/A,#N/A,#N/A", *lines[50:]],
        [*lines[:50], "1.#IND,1,1,1,1,1,1", *lines[50:]],
        [*lines, "#"],
    ):
        raw = (head + "\n" + "\n".join(commented) + "\n").encode()
        path.write_bytes(raw)
        assert csv_source._fast_parse_file(path, None) is None
        assert _outcome(lambda: read_imu_csv(path)) == _outcome(lambda raw=raw: parse_imu_csv_text(raw, name=str(path)))


def _plain(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plain.csv"
    path.write_text(text)
    return path


def test_numbers_survive_exactly_including_extremes() -> None:
    vals = [0.1, 1e-300, 5e-324, 4999.999999999999, -2.5, math.pi]
    t = np.array([5e-324, 1e-300, 0.1, math.pi, 1e300, 1.7976931348623157e308])
    acc = np.array([[v, -v, v / 3] for v in vals])
    text = csv_source.format_imu_csv(ImuBatch(t_s=t, acc_mps2=acc, time_base="session"))
    back = parse_imu_csv_text(text)
    assert np.array_equal(back.t_s, t) and np.array_equal(back.acc_mps2, acc)


@pytest.mark.parametrize(("row", "unit", "fragment"), [
    ("0,1e300,0,1", "mps2", "reads 1e+300 m/s²"),
    ("0,0,-5000.001,1", "mps2", "reads 5e+03 m/s²"),
    ("0,1e308,0,1", "g", "reads inf m/s²"),  # finite in g, infinite in m/s²
    ("0,0,0,600", "g", "check its unit (--acc-unit)"),
])  # fmt: skip
def test_values_beyond_any_sensor_are_refused(row: str, unit: str, fragment: str) -> None:
    text = f"t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2\n0.01,0,0,1\n{row.replace('0,', '0.02,', 1)}\n"
    with pytest.raises(CsvFormatError, match="beyond any sensor's range") as exc:
        parse_imu_csv_text(text, acc_unit=unit)  # type: ignore[arg-type]
    assert fragment in str(exc.value) and "t = 0.02 s" in str(exc.value)
    gyr = "t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2,gyr_x_rads,gyr_y_rads,gyr_z_rads\n0,0,0,9.8,0,0,400\n0.01,0,0,9.8,0,0,0\n"
    with pytest.raises(CsvFormatError, match="the gyroscope reads 400 rad/s"):
        parse_imu_csv_text(gyr)


def test_non_ascii_digits_and_bytes_in_comments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError, match="is not a number"):
        parse_imu_csv_text("t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2\n\u0660,1,2,9\n0.01,0,0,1\n")
    p = tmp_path / "c.csv"
    p.write_bytes(b'# "unbalan\xf3ed\nt_s,acc_x_mps2,acc_y_mps2,acc_z_mps2\n0,1,2,9\n0.01,0,0,1\n')
    for read in (lambda: read_imu_csv(p), lambda: parse_imu_csv_text(p.read_bytes())):
        with pytest.raises(CsvFormatError, match="line 1: not UTF-8"):
            read()


_finite = st.floats(-5000.0, 5000.0, width=64)  # within any sensor's range (beyond: refused, tested above)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(1e-6, 10.0), _finite, _finite, _finite), min_size=1, max_size=12),
    st.sampled_from(["{}", " {} ", '"{}"', "{:.6e}", "{!r}"]),
    st.booleans(),
)
def test_fuzz_valid_files_parse_to_their_numbers(rows: list, cell: str, decorate: bool) -> None:
    t = np.cumsum([r[0] for r in rows])
    acc = np.array([r[1:] for r in rows], dtype=float)
    lines = ["t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2"]
    for ti, a in zip(t, acc, strict=True):
        lines.append(",".join(cell.format(float(v)) for v in (ti, *a)))
        if decorate:
            lines.append("# note")
            lines.append("   ")
    text = "\n".join(lines) + ("\r\n" if decorate else "\n")
    try:
        b = parse_imu_csv_text(text)
    except CsvFormatError as exc:
        # only a rounding format may merge neighbouring timestamps
        assert cell == "{:.6e}" and "strictly increase" in str(exc)
        return
    expect = np.array(
        [
            [float(cell.format(float(v)).strip().strip('"')) for v in (ti, *a)]
            for ti, a in zip(t, acc, strict=True)
        ]
    )
    assert np.array_equal(b.t_s, _session_times(expect[:, 0]))
    assert np.array_equal(b.acc_mps2, expect[:, 1:])
    assert np.array_equal(_reference(text)[:, 1:], expect[:, 1:])


def _drop_runs(batch: ImuBatch, runs: list[tuple[int, int]]) -> ImuBatch:
    keep = np.ones(len(batch), dtype=bool)
    for a, n in runs:
        keep[a : a + n] = False
    gyr = None if batch.gyr_rads is None else batch.gyr_rads[keep]
    return ImuBatch(t_s=batch.t_s[keep], acc_mps2=batch.acc_mps2[keep], gyr_rads=gyr, time_base="session")


def test_split_at_gaps_of_the_time_column(tmp_path: Path) -> None:
    sim = simulate(SimParams(seconds=10.0, seed=3))  # 0.1 ms jitter on 5 ms: no false gaps
    assert split_at_gaps(sim.batch) == [sim.batch]
    holey = _drop_runs(sim.batch, [(400, 8), (900, 1), (1500, 60)])
    parts = split_at_gaps(holey)
    assert [len(p) for p in parts] == [400, 492, 599, len(sim.batch) - 1560]
    assert [(p.gap_before, p.n_lost) for p in parts] == [(False, 0), (True, 8), (True, 1), (True, 60)]
    assert np.array_equal(np.concatenate([p.acc_mps2 for p in parts]), holey.acc_mps2)
    # the CSV source yields the same cuts, in chunks, with a gap status before each
    path = tmp_path / "holey.csv"
    write_imu_csv(path, holey)

    async def collect() -> list:
        async with CsvSource(path, chunk=50) as src:
            return [ev async for ev in src]

    events = asyncio.run(collect())
    batches = [e for e in events if isinstance(e, ImuBatch)]
    assert [b.n_lost for b in batches if b.gap_before] == [8, 1, 60]
    assert [e.details["n_lost"] for e in events if getattr(e, "kind", None) == "gap"] == [8, 1, 60]
    assert max(len(b) for b in batches) == 50
    assert np.array_equal(ImuBatch.concat(batches).t_s, holey.t_s)


def test_jittered_time_stamps_are_no_gaps() -> None:
    """Host-timed stamps jittered by +-60 % of the interval: no gap (1.5 intervals alone would find
    376); a hole of 10 samples still is one."""
    rng = np.random.default_rng(2)
    n = 4000
    t = np.cumsum(0.01 * (1.0 + rng.uniform(-0.6, 0.6, n)))
    b = ImuBatch(t_s=t, acc_mps2=np.zeros((n, 3)), time_base="session")
    assert split_at_gaps(b) == [b]
    holey = _drop_runs(b, [(2000, 10)])
    parts = split_at_gaps(holey)
    assert len(parts) == 2 and parts[1].gap_before and 9 <= parts[1].n_lost <= 12


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolons"), ("\t", "tabs")])
def test_other_separators_are_named(sep: str, word: str) -> None:
    text = sep.join(["t_s", "acc_x_mps2", "acc_y_mps2", "acc_z_mps2"]) + "\n" + sep.join(["0", "0", "0", "9.8"]) + "\n"
    with pytest.raises(CsvFormatError, match=f"separated by {word}; pelvimon reads comma-separated files"):
        parse_imu_csv_text(text)


def test_clock_times_are_read_from_the_first_sample() -> None:
    """A time column of Unix seconds becomes session time from the first sample; a session-time column
    (an excerpt starting at 600 s, say) keeps its times."""
    unix = "t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2\n" + "\n".join(
        f"{1_700_000_000.0 + k * 0.005!r},0,0,9.81" for k in range(5)
    )
    b = parse_imu_csv_text(unix + "\n")
    assert b.t_s[0] == 0.0 and np.allclose(np.diff(b.t_s), 0.005, atol=1e-6)
    excerpt = "t_s,acc_x_mps2,acc_y_mps2,acc_z_mps2\n" + "\n".join(f"{600.0 + k * 0.005!r},0,0,9.81" for k in range(5))
    assert parse_imu_csv_text(excerpt + "\n").t_s[0] == 600.0


def test_a_jump_of_hours_in_the_time_column_is_a_gap_with_a_warning(tmp_path: Path, caplog) -> None:
    """Such a jump is likelier a clock reset or two recordings joined than a lost link: still a gap (no step
    spans it), but said; a lost second is not."""
    from pelvimon.analysis import load_batches

    b = simulate(SimParams(seconds=20, gait="run", seed=3)).batch
    t = b.t_s.copy()
    t[2000:] += 1.0  # a second lost
    t[3000:] += 2.0e6  # and a jump of 23 days
    p = tmp_path / "joined.csv"
    write_imu_csv(p, ImuBatch(t_s=t, acc_mps2=b.acc_mps2, gyr_rads=b.gyr_rads, time_base="session"))
    with caplog.at_level("WARNING", logger="pelvimon.sensors.csv_source"):
        batches = load_batches(p)
    assert sum(x.gap_before for x in batches) == 2
    warned = [r.getMessage() for r in caplog.records if r.name == "pelvimon.sensors.csv_source"]
    assert warned == [f"joined.csv: the time column jumps by 2e+06 s after t = {t[2999]:.6g} s; taken as lost "
                      "samples (if the file joins separate recordings, analyse them apart)"]


@pytest.mark.parametrize("fast", [True, False])
def test_empty_columns_at_the_end_of_each_line_are_ignored(tmp_path: Path, fast: bool) -> None:
    """A spreadsheet's export with two empty columns at the end of every line (``,,``): not two columns
    named '' that appear twice."""
    b = simulate(SimParams(seconds=5, rate_hz=100.0, seed=1)).batch
    p = tmp_path / "trailing.csv"
    text = csv_source.format_imu_csv(b).replace("\n", ",,\n")
    p.write_text(text if fast else "\ufeff" + text)  # (a byte-order mark takes the bytes path)
    got = read_imu_csv(p)
    np.testing.assert_array_equal(got.t_s, b.t_s)
    np.testing.assert_array_equal(got.gyr_rads, b.gyr_rads)


@pytest.mark.parametrize("fast", [True, False])
def test_metadata_lines_above_the_header_are_skipped_with_a_warning(tmp_path: Path, caplog, fast: bool) -> None:
    """A device's export that writes its name and the date above the column names: the header is found
    below them (the lines above are said to be skipped), and the samples are those of the file without them."""
    b = simulate(SimParams(seconds=3, rate_hz=100.0, seed=2)).batch
    text = csv_source.format_imu_csv(b)
    p = tmp_path / "export.csv"
    p.write_text(("" if fast else "\ufeff") + "Device,WT901BLE\nRecorded: 2026-11-20 10:00\n\n" + text)
    with caplog.at_level("WARNING", logger="pelvimon.sensors.csv_source"):
        got = read_imu_csv(p)
    np.testing.assert_array_equal(got.t_s, b.t_s)
    np.testing.assert_array_equal(got.acc_mps2, b.acc_mps2)
    np.testing.assert_array_equal(got.gyr_rads, b.gyr_rads)
    warned = [r.getMessage() for r in caplog.records if r.name == "pelvimon.sensors.csv_source"]
    assert warned == [f"{p}: the header is line 4; the 3 lines above it (not column names) are skipped"]
    # line numbers in errors count from the file's first line
    p.write_text("Device,WT901BLE\n" + HEADER + "\n0,1,2,3,4,5,6\n0.01,1,2,zz,4,5,6\n")
    with pytest.raises(CsvFormatError, match=r"line 4: 'zz' in column 'acc_z_mps2'"):
        read_imu_csv(p)


def test_comment_lines_above_the_header_are_not_warned_about(tmp_path: Path, caplog) -> None:
    p = tmp_path / "commented.csv"
    p.write_text("# from the lab\n\n" + HEADER + "\n0,1,2,3,4,5,6\n0.01,1,2,3,4,5,6\n")
    with caplog.at_level("WARNING", logger="pelvimon.sensors.csv_source"):
        assert len(read_imu_csv(p)) == 2
    assert not [r for r in caplog.records if r.name == "pelvimon.sensors.csv_source"]


def test_a_first_line_that_is_not_the_header_is_named_when_no_line_below_is_one(tmp_path: Path) -> None:
    """Metadata above a header with other names: the error names both fixes (map the names, or delete the
    lines above the header), since the field counts show line 1 is likely not the header."""
    p = tmp_path / "renamed.csv"
    p.write_text("Device,WT901BLE\ntime,ax,ay,az\n0,1,2,3\n0.01,1,2,3\n")
    with pytest.raises(CsvFormatError) as exc:
        read_imu_csv(p)
    assert str(exc.value) == (
        f"{p}: line 1: no column 't_s' for t_s (found: 'Device', 'WT901BLE'); rename the header or map names with "
        "--columns t_s=...,acc_x_mps2=...,...; or, if line 1 is not the header (it has 2 fields, the lines "
        "below it 4), delete the lines above the header or start them with '#'"
    )


def test_quoted_text_may_hold_commas_quotes_and_hashes(tmp_path: Path) -> None:
    """A text column as spreadsheets write it (RFC 4180 quoting): a comma, ``#`` or doubled quote inside
    quotes is text; a ``#`` outside quotes still starts a comment. Quoted names may hold commas too."""
    b = simulate(SimParams(seconds=1, rate_hz=100.0, seed=5)).batch
    lines = csv_source.format_imu_csv(b).splitlines()
    notes = ['"lap 2, left"', ' "lap #3, ""fast"""  # a comment', '""', "plain"]
    rows = [f"{row},{notes[i % len(notes)]}" for i, row in enumerate(lines[1:])]
    p = tmp_path / "notes.csv"
    p.write_text(lines[0] + ',"note, free text"\n' + "\n".join(rows) + "\n")
    got = read_imu_csv(p)
    np.testing.assert_array_equal(got.t_s, b.t_s)
    np.testing.assert_array_equal(got.gyr_rads, b.gyr_rads)
    # a quote left open is still a ragged row, by its line
    p.write_text(lines[0] + ",note\n" + lines[1] + ',"a\n' + lines[2] + ",b,c\n")
    with pytest.raises(CsvFormatError, match="line 3: 9 fields, but the header"):
        read_imu_csv(p)


@pytest.mark.parametrize("fast", [True, False])
def test_time_columns_in_ms_us_and_ns(tmp_path: Path, fast: bool) -> None:
    """A time column in ms, µs or ns is read as s with ``time_unit``; clock times in those units (Unix ms)
    count from the first sample, as in seconds."""
    b = simulate(SimParams(seconds=2, rate_hz=100.0, seed=6)).batch
    for unit, factor, start in (("ms", 1e3, 0.0), ("us", 1e6, 0.0), ("ns", 1e9, 0.0), ("ms", 1e3, 1.7e12)):
        p = tmp_path / f"{unit}.csv"
        t = start + b.t_s * factor
        data = np.column_stack([t, b.acc_mps2, b.gyr_rads])
        text = HEADER + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in data) + "\n"
        p.write_text(text if fast else "\ufeff" + text)
        got = read_imu_csv(p, time_unit=unit)
        want = b.t_s - (b.t_s[0] if start else 0.0)
        np.testing.assert_allclose(got.t_s, want, rtol=0, atol=1e-9 if not start else 1e-6)
        np.testing.assert_array_equal(got.acc_mps2, b.acc_mps2)
    with pytest.raises(ValueError, match="time_unit must be one of s, ms, us, ns, got 'min'"):
        read_imu_csv(p, time_unit="min")  # type: ignore[arg-type]


def test_a_gzip_compressed_csv_is_read_as_the_csv_it_holds(tmp_path: Path) -> None:
    import gzip

    sim = simulate(SimParams(seconds=10.0, seed=4))
    plain = tmp_path / "run.csv"
    write_imu_csv(plain, sim.batch)
    packed = tmp_path / "run.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = read_imu_csv(plain), read_imu_csv(packed)
    assert np.array_equal(a.t_s, b.t_s) and np.array_equal(a.acc_mps2, b.acc_mps2)
    assert np.array_equal(a.gyr_rads, b.gyr_rads) and len(b) == len(sim.batch)
    # its errors name the lines of the text inside
    bad = plain.read_text().splitlines()
    bad[5] = bad[5].replace(",", ",x", 1)
    packed.write_bytes(gzip.compress(("\n".join(bad) + "\n").encode()))
    with pytest.raises(CsvFormatError, match=r"run\.csv\.gz: line 6: 'x"):
        read_imu_csv(packed)


def test_a_cut_off_gzip_file_a_zip_archive_and_a_workbook_are_named(tmp_path: Path) -> None:
    import gzip
    import zipfile

    text = (HEADER + "\n" + "\n".join(f"{i / 100},0,0,9.8,0,0,0" for i in range(2000)) + "\n").encode()
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(text)[:-40])
    with pytest.raises(CsvFormatError, match=r"cut\.csv\.gz: the gzip-compressed file is damaged or cut off \("):
        read_imu_csv(cut)
    archive = tmp_path / "run.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("run.csv", text)
    with pytest.raises(CsvFormatError, match=r"run\.zip: a zip archive, not CSV; unzip it and give the CSV file"):
        read_imu_csv(archive)
    book = tmp_path / "run.data"  # an Excel workbook under any name (its parts listed in [Content_Types].xml)
    with zipfile.ZipFile(book, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(CsvFormatError, match=r"run\.data: a spreadsheet workbook, not CSV; save the sheet as CSV"):
        read_imu_csv(book)
    nested = text
    for _ in range(5):
        nested = gzip.compress(nested)
    with pytest.raises(CsvFormatError, match=r"x: gzip-compressed 4 times over; decompress it"):
        parse_imu_csv_text(nested, name="x")
    assert len(parse_imu_csv_text(gzip.compress(gzip.compress(text)), name="x")) == 2000
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    with pytest.raises(CsvFormatError, match=r"old\.xls: a spreadsheet workbook"):
        read_imu_csv(old)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_gzip_of_arbitrary_bytes_reads_as_those_bytes(data: bytes) -> None:
    """Compressed, any bytes give the outcome they give plain; cut short, the compressed file is named
    damaged."""
    import gzip

    packed = gzip.compress(data)
    assert _outcome(lambda: parse_imu_csv_text(packed, name="x")) == _outcome(lambda: parse_imu_csv_text(data, name="x"))
    for k in (2, len(packed) // 2, len(packed) - 1):
        got = _outcome(lambda k=k: parse_imu_csv_text(packed[:k], name="x"))
        assert got[0] == "error" and "damaged or cut off" in got[1]


def test_metadata_above_a_tab_separated_header_names_the_separator(tmp_path: Path) -> None:
    """As an Xsens export: a line of metadata, then a tab-separated header and rows."""
    text = "Acquisition frequency: 100 Hz\nPacketCounter\tAcc_X\tAcc_Y\tAcc_Z\n0\t9.8\t0.1\t0.2\n1\t9.8\t0.1\t0.2\n"
    path = tmp_path / "x.txt"
    path.write_text(text)
    with pytest.raises(CsvFormatError, match=r"x\.txt: line 2: the fields are separated by tabs; pelvimon reads comma"):
        read_imu_csv(path)


def _counter_text(times: np.ndarray, seed: int = 0) -> str:
    """A CSV whose time column holds ``times`` (whole numbers as such: a device counter), with random samples."""
    rng = np.random.default_rng(seed)
    rows = [f"{int(t) if float(t).is_integer() else float(t)!r}," + ",".join(repr(float(v)) for v in rng.normal(0.0, 3.0, 6)) for t in times]
    return HEADER + "\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("fast", [True, False])
def test_a_device_counter_that_wraps_around_is_read_on(tmp_path: Path, caplog, fast: bool) -> None:
    """Movella's SampleTimeFine (µs in 32 bits) and a 16-bit ms counter start again from 0: read on as one
    increasing time, with a warning; the fast path and the line-by-line parser (a BOM) agree."""
    cases = (
        ("us", 10_000, 2**32 - 1_234_567, 400, 1, 32),  # 100 Hz, wraps once 1.23 s in
        ("ms", 5, 60_000, 30_000, 3, 16),  # 200 Hz over 150 s: wraps at 5.5 s, 71 s and 136.6 s
    )
    for unit, step, start, n, wraps, bits in cases:
        raw = start + step * np.arange(n)
        text = _counter_text(raw % 2**bits)
        p = tmp_path / f"{unit}.csv"
        p.write_text(text if fast else "\ufeff" + text)
        caplog.clear()
        got = read_imu_csv(p, time_unit=unit)
        scale = {"us": 1e-6, "ms": 1e-3}[unit]
        np.testing.assert_allclose(got.t_s, raw * scale, rtol=0, atol=1e-9)
        assert len(split_at_gaps(got)) == 1  # (no gap where it wrapped)
        said = f"the time column starts again from 0 {'once' if wraps == 1 else f'{wraps} times'} (a device counter of 2^{bits})"
        assert [r.getMessage() for r in caplog.records] == [f"{p}: {said}: read on as one increasing time"]
        ref = _reference(text)
        assert np.array_equal(ref[:, 0] * scale, got.t_s)


@pytest.mark.parametrize("fast", [True, False])
def test_a_time_that_drops_other_than_a_counter_wrapping_is_still_refused(tmp_path: Path, fast: bool) -> None:
    """A drop from the middle of the range (not its top), a fraction, or a second wrap at another range: the
    line and the times as the file has them."""
    for times, line, now, before in (
        ([100, 200, 300, 40_000, 50, 150], 6, 50.0, 40000.0),  # 40000 is not near 2^16
        ([65_000.5, 65_300.5, 10.5, 300.5], 4, 10.5, 65300.5),  # not whole numbers
        ([65_000, 65_300, 10, 300, 70_000, 5], 7, 5.0, 70000.0),  # the counter went past its range
        ([-5, -3, -10, -2], 4, -10.0, -3.0),  # negative times
        ([1e300, 1e308, 5.0], 4, 5.0, 1e308),  # beyond any counter
    ):
        text = _counter_text(np.array(times))
        p = tmp_path / "drop.csv"
        p.write_text(text if fast else "\ufeff" + text)
        with pytest.raises(CsvFormatError, match=re.escape(f"line {line}: time {now!r} is not after the previous "
                                                           f"row's {before!r} (line {line - 1})")):
            read_imu_csv(p, time_unit="ms")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(8, 20), st.integers(-2**10, 2**20), st.lists(st.integers(-300, 300), min_size=2, max_size=40))
def test_fuzz_counter_times_fast_path_equals_reference(tmp_path: Path, bits: int, start: int,
                                                       steps: list[int]) -> None:
    """Counter-like time columns (steps that may drop, wrap or repeat): the fast path and the line-by-line
    parser give the same times or the same error."""
    times = (start + np.cumsum(steps)) % 2**bits if start >= 0 else start + np.cumsum(steps)
    text = _counter_text(times)
    path = tmp_path / "c.csv"
    path.write_text(text)
    assert _outcome(lambda: read_imu_csv(path, time_unit="ms")) == _outcome(
        lambda: parse_imu_csv_text("\ufeff" + text, name=str(path), time_unit="ms"))
