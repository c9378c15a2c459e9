"""`python -m psa COMMAND ...` is the `psa` command (psa/cli/main.py)."""

from .cli.main import main

main()
