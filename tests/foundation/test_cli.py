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
