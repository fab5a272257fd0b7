"""``python -m vigie.cli …``: the same as the ``vigie`` command (used by child processes)."""

from vigie.cli import main

main()
