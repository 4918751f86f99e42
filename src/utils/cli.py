"""Shared plumbing for the top-level scripts: logging set-up and user-error handling."""

import logging
import sys

from src.utils.errors import UserError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level=logging.INFO):
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr)


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; a UserError prints ``error: <message>`` on stderr and returns 2."""
    setup_logging()
    try:
        result = main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
