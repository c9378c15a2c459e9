"""The command-line layer: argument parsing, rich rendering, one-line errors. The only part
of the package that prints; `tools/*.py` are thin shells over it."""
