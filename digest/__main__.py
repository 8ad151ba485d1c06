"""Allow ``python -m digest``."""

from digest.cli.main import main

main()
