from __future__ import annotations

import os
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


_MARK_EXIT = (
    "import os\n_exit = os._exit\n"
    "def _marked(code):\n    os.write(2, b'[os._exit]')\n    _exit(code)\n"
    "os._exit = _marked\n"
)
"""Code that has ``os._exit`` say so on stderr: the process ended without the interpreter's teardown."""


def _script(before: str, *args: str, **kw) -> subprocess.Popen[str]:
    """``pelvimon ARGS`` through the console script's entry point (:func:`pelvimon.cli.run`), in a new
    process that first runs ``before`` (and :data:`_MARK_EXIT`); its output buffered as in a pipe."""
    code = f"import sys\n{_MARK_EXIT}{before}\nsys.argv = ['pelvimon', *sys.argv[1:]]\nfrom pelvimon.cli import run\nrun()\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.Popen([sys.executable, "-c", code, *args], text=True, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)  # fmt: skip


def _run_script(tmp_path, before: str, *args: str) -> tuple[int, str, str]:
    """:func:`_script` run to its end in ``tmp_path``: (exit code, stdout, stderr)."""
    proc = _script(before, *args, cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_a_batch_command_ends_after_its_exit_handlers_and_output(tmp_path, capsys) -> None:
    """A batch command's process ends without the interpreter's teardown, but only once the exit handlers
    ran and everything written reached its file or pipe: the same output as in process, a CSV file whole, and
    the command's exit code."""
    from pelvimon.sensors.csv_source import write_imu_csv
    from pelvimon.sensors.simulator import SimParams, simulate

    src = tmp_path / "run.csv"
    write_imu_csv(src, simulate(SimParams(seconds=60, gait="run", seed=4)).batch)
    handler = "import atexit\natexit.register(lambda: print('exit handler ran', file=sys.stderr))"
    code, out, err = _run_script(tmp_path, handler, "analyze", str(src), "--json")
    assert code == 0 and err == "exit handler ran\n[os._exit]"
    assert main(["analyze", str(src), "--json"]) == 0
    assert out == capsys.readouterr().out
    code, _, err = _run_script(tmp_path, "", "analyze", str(src), "--csv", "steps.csv")
    assert code == 0 and err == "[os._exit]"
    assert main(["analyze", str(src), "--csv", str(tmp_path / "here.csv")]) == 0
    assert (tmp_path / "steps.csv").read_bytes() == (tmp_path / "here.csv").read_bytes()
    code, _, err = _run_script(tmp_path, "", "analyze", str(tmp_path / "missing.csv"))
    assert code == 1 and "no such file" in err and err.endswith("[os._exit]")


def test_a_batch_command_waits_for_a_running_thread(tmp_path) -> None:
    """With another thread still running, the process ends the usual way, after that thread."""
    thread = (
        "import threading, time, pathlib\n"
        "threading.Thread(target=lambda: (time.sleep(1.0), pathlib.Path('late.txt').write_text('done'))).start()"
    )
    code, out, err = _run_script(tmp_path, thread, "simulate", "--seconds", "1")
    assert (tmp_path / "late.txt").read_text() == "done", err
    assert code == 0 and out.startswith("simulated 1 s") and "[os._exit]" not in err


def test_output_nobody_reads_ends_a_batch_command_as_sigpipe_would() -> None:
    """The reader of the output went away before the process flushed it: 141 (128 + SIGPIPE), quietly."""
    proc = _script("", "simulate", "--seconds", "1")
    assert proc.stdout is not None
    proc.stdout.close()  # (long before the child has started)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and err == "[os._exit]"
