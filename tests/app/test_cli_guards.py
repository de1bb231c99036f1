"""Command-line guards: outputs never destroy recordings, options are checked up front (one line, the
option and its range), clear messages for folders, empty names, binary files, a full disk."""

from __future__ import annotations

import argparse
import errno
import json
import math
from pathlib import Path

import pytest

from pelvimon.cli import main
from pelvimon.commands import _guards
from pelvimon.config import ConfigError, load_baseline, load_config

REPO = Path(__file__).resolve().parents[2]
SESSION = REPO / "recordings" / "emulated" / "polar_pmd_symmetric.mcap"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``pelvimon ARGV`` in this process: exit code, stdout, stderr (argparse errors exit via SystemExit)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """run.csv (a short simulated run), rec.mcap (a copy of a recorded session), magic.dat (MCAP content
    under another name) and a sub-folder."""
    d = tmp_path_factory.mktemp("guards")
    assert main(["-q", "simulate", "--seconds", "20", "--seed", "3", "-o", str(d / "run.csv")]) == 0
    (d / "rec.mcap").write_bytes(SESSION.read_bytes())
    (d / "magic.dat").write_bytes(SESSION.read_bytes())
    (d / "adir").mkdir()
    return d


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


# --- 1. outputs never destroy recordings -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "rec.mcap", "-o", "rec.mcap"],
        ["report", "run.csv", "-o", "run.csv"],
        ["report", "run.csv", "-o", "./run.csv"],
        ["analyze", "rec.mcap", "--csv", "rec.mcap"],
        ["analyze", "run.csv", "--csv", "run.csv"],
        ["analyze", "run.csv", "--save-baseline", "run.csv"],
        ["replay", "rec.mcap", "-o", "rec.mcap"],
        ["replay", "rec.mcap", "-o", "./rec.mcap"],
    ],
)
def test_an_output_that_is_the_input_is_refused(capsys, folder: Path, monkeypatch, argv: list[str]) -> None:
    monkeypatch.chdir(folder)
    before = _snapshot(folder)
    code, _, err = run(capsys, *argv)
    line = one_line(err)
    assert code == 2 and "is the input file" in line and argv[-2] in line
    assert _snapshot(folder) == before


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["simulate", "--seconds", "5", "-o", "rec.mcap"], "-o/--output"),
        (["simulate", "--seconds", "5", "--truth", "rec.mcap"], "--truth"),
        (["simulate", "--seconds", "5", "-o", "magic.dat"], "-o/--output"),
        (["report", "run.csv", "-o", "rec.mcap"], "-o/--output"),
        (["analyze", "run.csv", "--csv", "magic.dat"], "--csv"),
        (["analyze", "run.csv", "--save-baseline", "rec.mcap"], "--save-baseline"),
    ],
)
def test_an_existing_session_file_is_never_overwritten(
    capsys, folder: Path, monkeypatch, argv: list[str], option: str
) -> None:
    monkeypatch.chdir(folder)
    before = _snapshot(folder)
    code, _, err = run(capsys, *argv)
    line = one_line(err)
    assert code == 1 and "is a recorded session" in line and option in line
    assert _snapshot(folder) == before


def test_check_output_follows_links_and_allows_new_files(tmp_path: Path) -> None:
    inp = tmp_path / "run.csv"
    inp.write_text("t_s\n")
    link = tmp_path / "link.csv"
    link.symlink_to(inp)
    with pytest.raises(_guards.UsageError, match="is the input file"):
        _guards.check_output(link, [inp], "--csv")
    assert _guards.check_output(tmp_path / "new.csv", [inp, None], "--csv") == tmp_path / "new.csv"
    (tmp_path / "old.csv").write_text("x")  # an ordinary existing output is replaced as before
    assert _guards.check_output(tmp_path / "old.csv", [inp], "--csv") == tmp_path / "old.csv"
    assert _guards.is_session_file(tmp_path / "new.MCAP") and not _guards.is_session_file(inp)


def test_two_outputs_naming_one_file_are_refused(capsys, folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    code, _, err = run(capsys, "analyze", "run.csv", "--csv", "o.csv", "--save-baseline", "./o.csv")
    assert code == 2 and "--csv and --save-baseline name the same file" in one_line(err)
    assert not (folder / "o.csv").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "rec.mcap", "-o", "imu.csv"],
        ["analyze", "rec.mcap", "--csv", "imu.csv"],
        ["review", "rec.mcap", "--export", "imu.csv"],
        ["simulate", "--seconds", "3", "-o", "imu.csv"],
    ],
    ids=["report", "analyze", "review", "simulate"],
)
def test_an_existing_csv_of_imu_samples_is_never_overwritten(capsys, folder: Path, monkeypatch, argv) -> None:
    monkeypatch.chdir(folder)
    (folder / "imu.csv").write_bytes((folder / "run.csv").read_bytes())
    before = _snapshot(folder)
    code, _, err = run(capsys, *argv)
    assert code == 1 and "imu.csv holds IMU samples (a recording)" in one_line(err)
    assert _snapshot(folder) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze", "run.csv", "--csv", "run.csv/o.csv"],
        ["replay", "rec.mcap", "-o", "run.csv/x.mcap"],
        ["review", "rec.mcap", "--screenshot", "run.csv/deeper/x.png"],
        ["demo", "--seconds", "1", "--no-record", "--screenshot", "run.csv/x.png"],
    ],
    ids=["analyze", "replay", "review", "demo"],
)
def test_an_output_under_a_file_is_refused_before_any_work(capsys, folder: Path, monkeypatch, argv) -> None:
    monkeypatch.chdir(folder)
    code, _, err = run(capsys, *argv)
    assert code == 1 and "run.csv is a file, not a folder; give another path" in one_line(err)


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze", "run.csv", "--csv", "nodir/o.csv"],
        ["replay", "rec.mcap", "-o", "nodir/x.mcap"],
        ["record", "--sensor", "emulated:movesense", "--seconds", "1", "-o", "nodir/x.mcap"],
        ["review", "rec.mcap", "--screenshot", "nodir/x.png"],
        ["demo", "--seconds", "1", "--no-record", "--screenshot", "nodir/x.png"],
        ["demo", "--seconds", "1", "-o", "nodir/x.mcap"],
    ],
    ids=["analyze", "replay", "record", "review", "demo-screenshot", "demo-output"],
)
def test_every_output_in_a_missing_folder_is_refused_before_any_work(capsys, folder: Path, monkeypatch,
                                                                     argv) -> None:
    """Batch outputs, session files and screenshots alike: a mistyped folder is not made behind the user's back."""
    monkeypatch.chdir(folder)
    before = _snapshot(folder)
    code, _, err = run(capsys, *argv)
    assert code == 1 and "folder nodir does not exist; create it first" in one_line(err)
    assert _snapshot(folder) == before and not (folder / "nodir").exists()


def test_review_export_and_screenshot_must_be_two_files(capsys, folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    code, _, err = run(capsys, "review", "rec.mcap", "--export", "same.png", "--screenshot", "same.png")
    assert code == 2 and "--export and --screenshot name the same file" in one_line(err)
    assert not (folder / "same.png").exists()


def test_simulate_refuses_a_session_file_name(capsys, folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    code, _, err = run(capsys, "simulate", "--seconds", "3", "-o", "new.mcap")
    assert code == 2 and "simulate writes CSV samples" in one_line(err)
    assert not (folder / "new.mcap").exists()


def test_a_named_pipe_as_output_is_written_not_read(capsys, folder: Path, tmp_path: Path) -> None:
    """Checking an output used to open it for reading (to look for a session file's first bytes): on a
    pipe that waits forever. The table goes through the pipe."""
    import os
    import threading

    fifo = tmp_path / "steps.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, _ = run(capsys, "-q", "analyze", str(folder / "run.csv"), "--csv", str(fifo))
    reader.join(10.0)
    assert code == 0 and got and got[0].startswith(b"side,t_ic_s,")


def test_a_failed_write_keeps_the_file_that_was_there(capsys, folder: Path, tmp_path: Path, monkeypatch) -> None:
    """A full disk while writing: one line, the old content kept whole, no temporary file left."""
    import pelvimon.outputs

    out = tmp_path / "steps.csv"
    out.write_text("old table\n")

    def full(fd: int, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pelvimon.outputs.os, "fdopen", full)
    code, _, err = run(capsys, "analyze", str(folder / "run.csv"), "--csv", str(out))
    line = one_line(err)
    assert code == 1 and f"cannot write {out}: No space left on device" in line and "nothing was changed" in line
    assert out.read_text() == "old table\n" and sorted(p.name for p in tmp_path.iterdir()) == ["steps.csv"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_under_standard_output_is_said_in_plain_words(folder: Path) -> None:
    """"error: [Errno 28] No space left on device", with nothing to say what could not be written."""
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "pelvimon", "analyze", str(folder / "run.csv"), "--json"],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1
    assert one_line(r.stderr) == ("pelvimon analyze: error: no space left to write the output (the disk or a quota "
                                  "is full); free some space or write elsewhere")


def test_an_output_through_a_link_replaces_the_linked_file(tmp_path: Path) -> None:
    """A symbolic link as the output stays a link; the file it points to gets the new content."""
    from pelvimon.outputs import write_output

    target = tmp_path / "real.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert write_output(link, "new\n", what="table") == link
    assert link.is_symlink() and target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]


# --- 2. replay of a file without samples ------------------------------------------------------------------


def test_replay_of_a_cut_file_fails_in_one_line(capsys, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(SESSION.read_bytes()[:3000])
    code, out, err = run(capsys, "replay", str(cut))
    line = one_line(err)
    assert code == 1 and "holds no readable samples" in line and str(cut) in line
    assert "replayed" not in out


@pytest.mark.parametrize("argv", [["analyze"], ["report", "-o", "r.html"], ["review", "--export", "s.csv"]],
                         ids=["analyze", "report", "review"])
def test_a_cut_file_without_samples_is_one_line_naming_the_damage(capsys, tmp_path: Path, monkeypatch, argv) -> None:
    monkeypatch.chdir(tmp_path)
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(SESSION.read_bytes()[:3000])
    code, _, err = run(capsys, argv[0], str(cut), *argv[1:])
    line = one_line(err)  # (the reader's warning is folded into the error)
    assert code == 1 and "the file was cut short" in line and ("nothing to analyse" in line or "nothing to review" in line)

@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["analyze", ""], "the input file name is empty"),
        (["analyze", "run.csv", "--config", ""], "the config file name is empty"),
        (["analyze", "run.csv", "--baseline", ""], "the baseline file name is empty"),
        (["replay", "adir"], "adir: is a directory, not a session file"),
    ],
)
def test_empty_names_and_folders_as_inputs_are_named(capsys, folder: Path, monkeypatch, argv, needle) -> None:
    monkeypatch.chdir(folder)
    code, _, err = run(capsys, *argv)
    assert code == 1 and needle in one_line(err)


def test_debug_output_leaves_the_error_line_of_a_cut_file_as_it_is(tmp_path: Path) -> None:
    """With -vv the reader's debug lines are shown, and the one error line says the same as without."""
    import subprocess
    import sys

    cut = tmp_path / "cut.mcap"
    cut.write_bytes(SESSION.read_bytes()[:3000])

    def stderr(*opts: str) -> list[str]:
        cmd = [sys.executable, "-m", "pelvimon", *opts, "analyze", str(cut)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stderr.strip().splitlines()

    plain, verbose = stderr(), stderr("-vv")
    assert len(plain) == 1 and "the file was cut short" in plain[0]
    assert verbose[-1] == plain[0] and any("skipped" in ln for ln in verbose[:-1])


# --- 3. and 4. options checked up front ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["demo", "--cpd-right", "100"], ("--cpd-right", "between 0 and 25")),
        (["demo", "--cpd-left", "-1"], ("--cpd-left", "between 0 and 25")),
        (["demo", "--cadence", "0"], ("--cadence", "between 60 and 240")),
        (["demo", "--seed", "-1"], ("--seed", ">= 0")),
        (["demo", "--speed", "inf"], ("--speed", "finite")),
        (["demo", "--speed", "0"], ("--speed", "between 0.1 and 1000")),
        (["demo", "--rate", "1"], ("--rate", "between 20 and 2000 Hz")),
        (["demo", "--loss", "1"], ("--loss", "< 1")),
        (["demo", "--seconds", "nan"], ("--seconds", "finite")),
        (["record", "--sensor", "emulated:movesense", "-o", "x.mcap", "--rate", "1"], ("--rate", "20")),
        (["record", "--sensor", "emulated:witmotion", "-o", "x.mcap", "--rate", "20"], ("--rate", "10 Hz")),
        (["record", "--sensor", "emulated:", "-o", "x.mcap", "--seconds", "2"], ("no emulated protocol", "movesense, ")),
        (["record", "--sensor", "emulated:movesense?speed=inf", "-o", "x.mcap"], ("speed", "finite")),
        (["replay", "x.mcap", "--speed", "nan"], ("--speed", "finite")),
        (["replay", "x.mcap", "--speed", "1e-9"], ("--speed", "0.1")),
        (["scan", "--emulated", "--timeout", "inf"], ("--timeout", "finite")),
        (["scan", "--emulated", "--timeout", "1e6"], ("--timeout", "120")),
        (["simulate", "--seconds", "30", "--then", "run:20", "--pause", "1e9"], ("--pause", "3600")),
        (["simulate", "--seconds", "30", "--then", "run:20", "--pause", "inf"], ("--pause", "finite")),
        (["simulate", "--cpd-left", "nan"], ("--cpd-left",)),
        (["decode", "--protocol", "polar_pmd", "--hex", "00", "--set", "factor=0"], ("factor=0", "> 0")),
        (["decode", "--protocol", "polar_pmd", "--hex", "00", "--set", "factor=1e39"], ("factor=1e+39", "finite")),
        (["decode", "--protocol", "pelvimon", "--hex", "00", "--set", "acc_lsb_per_g=-1"], ("acc_lsb_per_g",)),
        (["decode", "--protocol", "polar_pmd", "--hex", "00", "--set", "factor=abc"], ("(factor=abc)",)),
        (["decode", "--protocol", "polar_pmd", "--hex", "00", "--set", "factor=1", "--set", "factor=2"],
         ("--set factor is given twice",)),
        (["simulate", "--seconds", "3", "-o", "-"], ("-o/--output -", "/dev/stdout")),
        (["analyze", "x.mcap", "--acc-unit", "g"], ("--acc-unit describes a CSV file", "x.mcap is a session file")),
        (["review", "x.mcap", "--time-unit", "ms"], ("--time-unit describes a CSV file", "x.mcap is a session file")),
        (["report", "x.mcap", "-o", "r.html", "--columns", "t_s=t"], ("--columns describes a CSV file",)),
        (["analyze", "x.csv", "--columns", "acc_x_mps2=ax,acc_y_mps2=ax"], ("both name the file's column 'ax'",)),
    ],
)
def test_bad_options_are_one_line_exit_2(capsys, tmp_path: Path, monkeypatch, argv, fragments) -> None:
    monkeypatch.chdir(tmp_path)
    if argv[0] == "demo":  # should the option pass, a short session in the terminal, not a window
        argv = [*argv, "--headless", "--no-record"] + ([] if "--seconds" in argv else ["--seconds", "3"])
    code, _, err = run(capsys, *argv)
    line = one_line(err)
    assert code == 2, line
    for f in fragments:
        assert f in line, (f, line)
    assert "--end-stand" not in line and "session ended" not in line
    assert not (tmp_path / "x.mcap").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "0", "1e9"])
def test_record_seconds_must_end(capsys, value: str) -> None:
    """Parsed only: a record that accepted them would never end."""
    from pelvimon.cli import build_parser

    parser, _ = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["record", "--sensor", "emulated:movesense", "-o", "x.mcap", "--seconds", value])
    assert exc.value.code == 2 and "--seconds" in one_line(capsys.readouterr().err)


def test_pause_errors_leave_the_other_options_names_alone(capsys) -> None:
    code, _, err = run(capsys, "simulate", "--seconds", "30", "--then", "run:20", "--pause", "1e9")
    assert code == 2 and "half of --pause" in one_line(err)
    code, _, err = run(capsys, "simulate", "--seconds", "20", "--end-stand", "15")
    assert code == 2 and "--end-stand" in one_line(err) and "--pause" not in err


def test_demo_spec_takes_exact_values_and_no_plus_signs() -> None:
    from pelvimon.commands.demo import demo_spec
    from pelvimon.sensors.spec import parse_spec

    args = argparse.Namespace(cpd_left=8.123456789, cpd_right=4.0, cadence=170.0, speed=1000.0, seed=1,
                              loss=0.0, rate=208.0)
    opts = parse_spec(demo_spec(args)).options
    assert opts["cpd_left"] == 8.123456789 and opts["speed"] == 1000.0


# --- 5. messages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_record_to_a_folder_says_it_is_a_folder(capsys, folder: Path, monkeypatch, extra: list[str]) -> None:
    monkeypatch.chdir(folder)
    (folder / "adir.mcap").mkdir(exist_ok=True)
    for name in ("adir", "adir.mcap"):
        code, _, err = run(capsys, "record", "--sensor", "emulated:movesense", "--seconds", "1", "-o", name, *extra)
        line = one_line(err)
        assert code == 1 and "is a directory" in line and "Errno" not in line
    assert (folder / "adir.mcap").is_dir()


def test_record_needs_an_mcap_name_and_a_name(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "record", "--sensor", "emulated:movesense", "--seconds", "1", "-o", "x.csv")
    assert code == 2 and "-o x.csv: session files end in .mcap" in one_line(err)
    code, _, err = run(capsys, "report", SESSION.as_posix(), "-o", "")
    assert code == 2 and "empty" in one_line(err) and "Is a directory" not in err
    assert list(tmp_path.iterdir()) == []


def test_report_to_a_folder(capsys, folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    code, _, err = run(capsys, "report", "run.csv", "-o", "adir")
    assert code == 1 and "adir is a directory" in one_line(err)


def test_config_and_baseline_read_errors_are_clear(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ConfigError, match="is a directory") as e1:
        load_config(tmp_path / "adir")
    with pytest.raises(ConfigError, match="not a text file") as e2:
        load_config(binary)
    with pytest.raises(ConfigError, match="is a directory") as e3:
        load_baseline(tmp_path / "adir")
    for e in (e1, e2, e3):
        assert "Errno" not in str(e.value) and "codec" not in str(e.value) and "\n" not in str(e.value)
    bom = tmp_path / "bom.toml"
    bom.write_bytes("\ufeff[asymmetry]\nwindow_steps = 30\n".encode())
    assert load_config(bom).asymmetry.window_steps == 30


def _baseline_doc(**left: float) -> dict:
    side = {"n": 40, "mean": 6.0, "sd": 1.0, "rho": 0.2, "n_eff": 26.7}
    return {
        "format": "pelvimon-baseline",
        "version": 1,
        "meta": {"source": "x"},
        "metrics": {"cpd_deg": {"left": {**side, **left}, "right": dict(side)}},
    }


def test_baseline_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(_baseline_doc()).encode())
    assert load_baseline(p).stats["cpd_deg"][0].n == 40


def test_disk_full_while_recording_says_what_is_kept(capsys, tmp_path: Path, monkeypatch) -> None:
    from pelvimon.sensors.session_file import SessionWriter

    calls = {"n": 0}
    original = SessionWriter.write_batch

    def write_batch(self, batch) -> None:
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, batch)

    monkeypatch.setattr(SessionWriter, "write_batch", write_batch)
    out = tmp_path / "full.mcap"
    code, _, err = run(capsys, "-q", "record", "--sensor", "emulated:movesense?speed=50", "--seconds", "60",
                       "-o", str(out))
    line = one_line(err)
    assert code == 1 and "disk is full" in line and str(out) in line and "free some space" in line
    assert "Errno" not in line and out.exists()


# --- 6. loose validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "needle"),
    [
        ({"sd": -1.0}, "'metrics.cpd_deg.left.sd' must be between 0 and"),
        ({"n": -3}, "'metrics.cpd_deg.left.n' must be a whole number >= 0"),
        ({"n": 2.5}, "'metrics.cpd_deg.left.n' must be a whole number >= 0"),
        ({"rho": 1.5}, "'metrics.cpd_deg.left.rho' must be between -1 and 1"),
        ({"rho": -2}, "'metrics.cpd_deg.left.rho' must be between -1 and 1"),
        ({"n_eff": -1}, "'metrics.cpd_deg.left.n_eff' must be >= 0"),
    ],
)
def test_baseline_values_out_of_range_are_refused(tmp_path: Path, left: dict, needle: str) -> None:
    p = tmp_path / "b.json"
    p.write_text(json.dumps(_baseline_doc(**left)))
    with pytest.raises(ConfigError) as exc:
        load_baseline(p)
    assert needle in str(exc.value) and str(p) in str(exc.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[asymmetry]\nwindow_s = -1\n", "asymmetry.window_s must be >= 0"),
        ("[asymmetry]\nwindow_steps = 100000000\n", "asymmetry.window_steps must be at most 1000"),
    ],
    ids=["negative-window_s", "huge-window_steps"],
)
def test_config_sizes_and_signs_are_checked(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_config(p)
    p.write_text("[asymmetry]\nwindow_steps = 1000\nwindow_s = 0\n")
    assert load_config(p).asymmetry.window_steps == 1000


# --- 7. cosmetics ------------------------------------------------------------------------------------------


def test_step_line_shows_na_for_unknown_values() -> None:
    from pelvimon.commands._session import _step_line

    step = argparse.Namespace(t_ic_s=5.3, side="L", cadence_spm=170.0, contact_time_s=0.25,
                              cpd_deg=math.nan, gap=False)
    line = _step_line(step)
    assert "CPD  n/a" in line and "nan" not in line
    assert "CPD  6.2°" in _step_line(argparse.Namespace(**{**vars(step), "cpd_deg": 6.2}))


def test_baseline_footnote_only_with_a_starred_row(capsys, folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    assert run(capsys, "analyze", "run.csv", "--save-baseline", "same.json")[0] == 0
    code, out, err = run(capsys, "analyze", "run.csv", "--baseline", "same.json")
    assert code == 0, err
    assert "Change from baseline" in out and " *" not in out and "interval excludes zero" not in out
    assert main(["-q", "simulate", "--seconds", "20", "--seed", "3", "--cpd-left", "12", "-o", "weak.csv"]) == 0
    code, out, err = run(capsys, "analyze", "weak.csv", "--baseline", "same.json")
    assert code == 0, err
    assert " *" in out and "* the interval excludes zero" in out


def test_an_unknown_option_is_named_with_its_command(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "run.csv", "--bogus"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err == "pelvimon analyze: error: unrecognized arguments: --bogus (see 'pelvimon analyze --help')\n"
    with pytest.raises(SystemExit):
        main(["--bogus", "analyze", "run.csv"])  # given to pelvimon itself
    assert capsys.readouterr().err.startswith("pelvimon: error: unrecognized arguments: --bogus")


def test_global_options_after_the_command_count_as_before_it(capsys, folder: Path, monkeypatch) -> None:
    """"pelvimon analyze -q run.csv" was "unrecognized arguments: -q"."""
    from pelvimon.cli import _join_global_options, build_parser

    monkeypatch.chdir(folder)
    parser, _ = build_parser()
    for argv, want in (
        (["analyze", "-q", "run.csv"], (0, True, False)),
        (["analyze", "run.csv", "-vv", "--debug"], (2, False, True)),
        (["-v", "analyze", "run.csv"], (1, False, False)),
        (["-vv", "analyze", "-v", "run.csv"], (3, False, False)),  # (before and after add up)
        (["analyze", "run.csv"], (0, False, False)),
    ):
        ns = parser.parse_args(argv)
        _join_global_options(ns)
        assert (ns.verbose, ns.quiet, ns.debug) == want, argv
    ns = parser.parse_args(["report", "run.csv", "-o", "r.html", "-q"])
    _join_global_options(ns)
    assert ns.quiet
    code, _, err = run(capsys, "analyze", "missing.csv", "-q")
    assert code == 1 and "missing.csv: no such file" in one_line(err)
    assert "global options (also before the command)" in run(capsys, "replay", "--help")[1]


def test_a_session_that_recorded_nothing_says_so(capsys) -> None:
    from pelvimon.commands.live import _report_recordings

    _report_recordings([], wanted=True)
    assert capsys.readouterr().out.strip() == "nothing was recorded: the session ended before the sensor was connected"
    _report_recordings([], wanted=False)
    _report_recordings([Path("a.mcap")], wanted=True)
    assert capsys.readouterr().out.splitlines() == ["session recorded to a.mcap", "review it with: pelvimon review a.mcap"]


@pytest.mark.parametrize(
    "content",
    [
        "time,ax,ay,az,gx,gy,gz\n0.000,0.1,0.2,9.8,0,0,0\n0.005,0.1,0.2,9.8,0,0,0\n0.010,0.1,0.2,9.8,0,0,0\n",
        "12;0,01;0,02;1,00\n13;0,01;0,02;1,00\n14;0,01;0,02;1,00\n",  # no header, decimal commas
        "# phone export\nTime (s)\tX\tY\tZ\n0.0\t1\t2\t3\n0.1\t1\t2\t3\n",
    ],
    ids=["other-names", "no-header", "tabs"],
)
def test_a_csv_of_samples_under_other_column_names_is_never_overwritten(capsys, folder: Path, monkeypatch,
                                                                        content: str) -> None:
    """The files --columns reads are recordings too, whatever their header."""
    monkeypatch.chdir(folder)
    (folder / "phone.csv").write_text(content)
    before = _snapshot(folder)
    code, _, err = run(capsys, "report", "run.csv", "-o", "phone.csv")
    assert code == 1 and "phone.csv holds IMU samples (a recording)" in one_line(err)
    assert _snapshot(folder) == before


def test_a_per_step_table_is_an_output_a_new_one_replaces(capsys, folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    assert run(capsys, "analyze", "run.csv", "--csv", "steps.csv")[0] == 0
    first = (folder / "steps.csv").read_text()
    assert first.startswith("side,t_ic_s,") and first.count("\n") > 10
    assert run(capsys, "analyze", "run.csv", "--csv", "steps.csv")[0] == 0
    assert (folder / "steps.csv").read_text() == first


@pytest.mark.parametrize(
    ("kept", "argv"),
    [
        ("anna.json", ["analyze", "run.csv", "--csv", "anna.json"]),
        ("anna.json", ["report", "run.csv", "-o", "anna.json"]),
        ("anna.json", ["simulate", "--seconds", "3", "--truth", "anna.json"]),
        ("truth.json", ["analyze", "run.csv", "--save-baseline", "truth.json"]),
        ("truth.json", ["review", "rec.mcap", "--export", "truth.json"]),
    ],
    ids=["table-over-baseline", "report-over-baseline", "truth-over-baseline", "baseline-over-truth",
         "export-over-truth"],
)
def test_a_baseline_or_a_truth_is_replaced_only_by_its_own_kind(capsys, folder: Path, monkeypatch, kept: str,
                                                                argv: list[str]) -> None:
    """A runner's baseline (and a simulated session's truth) went silently under any output named after it:
    a step table, a report, another kind of JSON."""
    monkeypatch.chdir(folder)
    assert run(capsys, "analyze", "run.csv", "--save-baseline", "anna.json", "--runner", "Anna")[0] == 0
    assert run(capsys, "simulate", "--seconds", "3", "--truth", "truth.json")[0] == 0
    what = "a runner's baseline" if kept == "anna.json" else "the truth of a simulated session"
    before = _snapshot(folder)
    code, _, err = run(capsys, *argv)
    assert code == 1 and f"{kept} holds {what}; choose another name" in one_line(err)
    assert _snapshot(folder) == before


def test_a_new_baseline_in_place_of_an_old_one_is_said(capsys, folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    (folder / "b.json").unlink(missing_ok=True)
    code, out, _ = run(capsys, "analyze", "run.csv", "--save-baseline", "b.json", "--runner", "Anna")
    assert code == 0 and "baseline written to b.json\n" in out
    code, out, _ = run(capsys, "analyze", "run.csv", "--save-baseline", "b.json", "--runner", "Ben")
    assert code == 0 and "baseline written to b.json (in place of the one saved there before)" in out
    assert load_baseline(folder / "b.json").meta["runner"] == "Ben"
    assert run(capsys, "simulate", "--seconds", "3", "--truth", "t2.json")[0] == 0
    assert run(capsys, "simulate", "--seconds", "4", "--truth", "t2.json")[0] == 0  # (a new truth: its own kind)
    assert json.loads((folder / "t2.json").read_text())["params"]["seconds"] == 4


def test_a_sessions_folder_that_cannot_be_made_is_one_line_with_the_ways_out(capsys, tmp_path: Path,
                                                                           monkeypatch) -> None:
    """The data folder lies under a file: the demo says which folder and how to go on, and not that the
    sensor never connected."""
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("PELVIMON_DATA_DIR", str(tmp_path / "afile" / "pelvimon"))
    code, out, err = run(capsys, "demo", "--headless", "--seconds", "1", "--speed", "5")
    line = one_line(err)
    assert code == 1 and f"cannot create the sessions folder {tmp_path / 'afile' / 'pelvimon' / 'sessions'}" in line
    assert "PELVIMON_DATA_DIR" in line and "-o FILE" in line and "--no-record" in line
    assert "nothing was recorded" not in out


@pytest.mark.parametrize("command", ["live", "record"])
def test_emulated_sensor_option_values_are_checked_before_the_session(capsys, tmp_path: Path, monkeypatch,
                                                                      command: str) -> None:
    """live refuses a bad emulated option value as record does: one usage line, exit 2, nothing started."""
    monkeypatch.setenv("PELVIMON_DATA_DIR", str(tmp_path))
    argv = [command, "--sensor", "emulated:movesense?speed=-1", "--seconds", "1"]
    argv += ["--headless"] if command == "live" else ["-o", str(tmp_path / "x.mcap")]
    code, out, err = run(capsys, *argv)
    assert code == 2 and "--sensor: speed must be > 0" in one_line(err)
    assert "session ended" not in err and "nothing was recorded" not in out
    assert list(tmp_path.rglob("*.mcap")) == []


def test_a_gzip_compressed_csv_of_imu_samples_is_never_overwritten(capsys, folder: Path, monkeypatch) -> None:
    import gzip

    monkeypatch.chdir(folder)
    (folder / "imu.csv.gz").write_bytes(gzip.compress((folder / "run.csv").read_bytes()))
    before = _snapshot(folder)
    code, _, err = run(capsys, "analyze", "run.csv", "--csv", "imu.csv.gz")
    assert code == 1 and "imu.csv.gz holds IMU samples (a recording)" in one_line(err)
    assert _snapshot(folder) == before
