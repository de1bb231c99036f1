"""The README stays true: it documents every subcommand that exists and no other; its test command is the
one CI runs; its images exist."""

from __future__ import annotations

import re
from pathlib import Path

from pelvimon.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _commands() -> set[str]:
    _, table = build_parser()
    return set(table)


def test_every_command_is_documented_and_every_documented_command_exists() -> None:
    code = "\n".join(re.findall(r"```(?:sh)?\n(.*?)```", README, flags=re.S))
    documented = set(re.findall(r"^(?:\.venv/bin/)?pelvimon ([a-z]+)\b", code, flags=re.M))
    documented |= set(re.findall(r"`pelvimon ([a-z]+)`", README))
    documented |= set(re.findall(r"\.venv/bin/pelvimon ([a-z]+)", README))
    assert _commands() - documented == set(), "commands missing from the README"
    assert documented - _commands() == set(), "the README documents commands that do not exist"


def test_quick_start_has_the_demo_and_the_ci_test_command() -> None:
    blocks = re.findall(r"## Quick start(.*?)\n## ", README, flags=re.S)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", blocks, flags=re.S)
    assert len(commands) == 2
    assert commands[0].rstrip().endswith("pelvimon demo")
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1].strip() in ci


def test_linked_files_exist() -> None:
    for link in re.findall(r"\]\(((?:docs|recordings)/[^)#]+)\)", README):
        assert (REPO / link).exists(), link
