"""One module per ``pelvimon`` subcommand.

Each module defines ``NAME`` (the subcommand), ``ORDER`` (its place in ``--help``), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy dependencies inside ``run`` so that
``pelvimon --help`` stays fast. The CLI discovers the modules present here: a command that is not built
is not in the help.
"""
