"""``python -m pelvimon``: the same as the ``pelvimon`` command."""

from pelvimon.cli import run

run()
