"""``python -m minichain`` is the ``minichain`` command."""

from minichain.cli import main

main()
