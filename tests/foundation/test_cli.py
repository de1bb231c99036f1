from __future__ import annotations

import subprocess
import sys

import pelvimon
from pelvimon.cli import main


def test_version(capsys) -> None:
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert pelvimon.__version__ in capsys.readouterr().out


def test_unknown_subcommand_is_one_line_exit_2() -> None:
    r = subprocess.run([sys.executable, "-m", "pelvimon.cli", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "frobnicate" in r.stderr


def test_no_subcommand_prints_help_and_exits_2(capsys) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def _run_script(tmp_path, before: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``pelvimon ARGS`` through the console script's entry point (:func:`pelvimon.cli.run`), in a new
    process that first runs ``before``."""
    code = f"import sys\n{before}\nsys.argv = ['pelvimon', *sys.argv[1:]]\nfrom pelvimon.cli import run\nrun()\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)  # fmt: skip


def test_a_batch_command_ends_after_its_exit_handlers_and_output(tmp_path, capsys) -> None:
    """A batch command's process ends without the interpreter's teardown, but only once the exit handlers
    ran and everything written reached its file or pipe: the same output as in process, a CSV file whole, and
    the command's exit code."""
    from pelvimon.sensors.csv_source import write_imu_csv
    from pelvimon.sensors.simulator import SimParams, simulate

    src = tmp_path / "run.csv"
    write_imu_csv(src, simulate(SimParams(seconds=60, gait="run", seed=4)).batch)
    handler = "import atexit\natexit.register(lambda: print('exit handler ran', file=sys.stderr))"
    r = _run_script(tmp_path, handler, "analyze", str(src), "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "exit handler ran"
    assert main(["analyze", str(src), "--json"]) == 0
    assert r.stdout == capsys.readouterr().out
    r = _run_script(tmp_path, "", "analyze", str(src), "--csv", "steps.csv")
    assert r.returncode == 0, r.stderr
    assert main(["analyze", str(src), "--csv", str(tmp_path / "here.csv")]) == 0
    assert (tmp_path / "steps.csv").read_bytes() == (tmp_path / "here.csv").read_bytes()
    r = _run_script(tmp_path, "", "analyze", str(tmp_path / "missing.csv"))
    assert r.returncode == 1 and "no such file" in r.stderr


def test_a_batch_command_waits_for_a_running_thread(tmp_path) -> None:
    """With another thread still running, the process ends the usual way, after that thread."""
    thread = (
        "import threading, time, pathlib\n"
        "threading.Thread(target=lambda: (time.sleep(1.0), pathlib.Path('late.txt').write_text('done'))).start()"
    )
    r = _run_script(tmp_path, thread, "decode", "--protocol", "pelvimon", "--hex", "00")
    assert (tmp_path / "late.txt").read_text() == "done", r.stderr
