"""Allow ``python -m convcalc``."""

from convcalc.cli import main

main()
