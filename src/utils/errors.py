"""Errors that are the user's to fix (bad input, bad options), as opposed to bugs.

Scripts catch :class:`UserError` at the top (see :func:`src.utils.cli.run_cli`) and print its message
without a traceback, then exit with status 2.
"""


class UserError(Exception):
    """A problem with the user's input: the message says which file, which line and what is wrong."""


def where(path, line_no=None) -> str:
    """Format a location for an error message: ``file.txt:12`` or ``file.txt``."""
    return f"{path}:{line_no}" if line_no is not None else str(path)
