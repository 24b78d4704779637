"""Allow ``python -m convcalc``."""

from convcalc.cli.app import main

main()
