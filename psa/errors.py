"""The one exception type a user sees: a one-line message naming the key, file or id."""


class PsaError(Exception):
    """Bad user input (recipe, data, checkpoint). Tools print the message and exit non-zero."""
