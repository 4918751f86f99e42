"""Shared plumbing for the top-level scripts: logging set-up and user-error handling."""

import errno
import logging
import re
import sys

from src.utils.errors import UserError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OVERRIDE = re.compile(r"^--\w+\.\w+=")  # a config override: --section.key=value


def add_normalization_options(parser, note: str = ""):
    """``--lowercase`` and ``--hash_digits`` (src/text/normalize.py), the same flags wherever text is read."""
    parser.add_argument("--lowercase", action="store_true", help=f"lower-case the tokens (not <unk>/UNK){note}")
    parser.add_argument("--hash_digits", action="store_true",
                        help=f"replace every digit by '#' (the Gigaword convention: '3.5' -> '#.#'){note}")


def parse_with_overrides(parser, argv=None):
    """``(args, overrides)``: the parser's own options, and the ``--section.key=value`` config overrides
    among the rest; anything else is a usage error (exit 2).

    >>> import argparse
    >>> parse_with_overrides(argparse.ArgumentParser(), ["--model_config.hidden_size=8"])[1]
    ['--model_config.hidden_size=8']
    """
    args, rest = parser.parse_known_args(argv)
    unknown = [a for a in rest if not OVERRIDE.match(a)]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (config overrides look like "
                     "--section.key=value)")
    return args, rest


def setup_logging(level=logging.INFO):
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr)


def describe_os_error(exc: OSError) -> str:
    """``<path>: <what went wrong>`` for an OSError (a full disk, a missing permission, a folder where
    a file was expected), as the user reads it: no traceback, the file named.

    >>> describe_os_error(OSError(28, "No space left on device", "out/x.ckpt"))
    'out/x.ckpt: No space left on device (the disk is full)'
    """
    what = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what += " (the disk is full)"
    elif exc.errno == errno.EFBIG:
        what += " (a file size limit was reached)"
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{' -> '.join(names)}: {what}" if names else what


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)`` and return an exit status: main's own if it returns an int (statistics or
    None mean success), 2 after printing ``error: <message>`` on stderr for a UserError or an OSError
    (the user's environment: permissions, full disk, a path of the wrong kind)."""
    setup_logging()
    try:
        result = main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0
