"""The exceptions a user sees: a one-line message naming the key, file or id."""


class PsaError(Exception):
    """Bad user input (recipe, data, checkpoint). Tools print the message and exit non-zero."""


class OutputError(PsaError):
    """An output could not be written (disk full, not writable): it stops the command, even
    where an input that cannot be read is only skipped."""
