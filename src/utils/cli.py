"""Shared plumbing for the top-level scripts: logging set-up and user-error handling."""

import logging
import sys

from src.utils.errors import UserError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level=logging.INFO):
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr)


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)`` and return an exit status: main's own if it returns an int (statistics or
    None mean success), 2 after printing ``error: <message>`` on stderr for a UserError."""
    setup_logging()
    try:
        result = main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0
