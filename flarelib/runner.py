"""The one way every flarelib command runs: a failure is one line, ``--debug`` shows the traceback.

Every command (``flarelib catalog``, ``flarelib train``, ``flarelib suite``, ... and their
``python -m flarelib.<module>`` forms) hands its body to :func:`run_command`, which strips
``--debug`` from the arguments and turns the outcome into an exit status:

* the body's return value (``None`` is 0);
* ``SystemExit`` passes through (argparse and jsonargparse report a bad argument themselves, then exit 2);
* ``KeyboardInterrupt``: a line on stderr, status 130;
* any other exception: ``error: <type>: <first line>`` on stderr, status 1; the traceback too with
  ``--debug`` or ``FLARELIB_DEBUG=1``.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence

DEBUG_FLAG = "--debug"
#: The line a command's ``--help`` shows about the flag that the runner handles.
DEBUG_HELP = f"{DEBUG_FLAG} (or FLARELIB_DEBUG=1) shows the traceback of a failure"


def debug_requested(flag: bool = False) -> bool:
    """Whether a command should show tracebacks: its ``--debug`` flag or ``FLARELIB_DEBUG=1``."""
    return flag or os.environ.get("FLARELIB_DEBUG", "") not in ("", "0")


def one_line_error(err: BaseException, debug: bool) -> str:
    """``error: <type>: <first line of the message>`` plus where the traceback is."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else "(no message)"
    hint = "" if debug else f" (run with {DEBUG_FLAG} or FLARELIB_DEBUG=1 for the traceback)"
    return f"error: {type(err).__name__}: {message}{hint}"


def run_command(body: Callable[[list[str]], int | None], argv: Sequence[str], *,
                interrupted: str = "interrupted") -> int:
    """Run ``body(argv without --debug)`` and return the command's exit status (see the module docstring).

    ``interrupted`` is the line printed on Ctrl-C (say how to resume, where a command can).
    """
    args = [str(a) for a in argv]
    debug = debug_requested(DEBUG_FLAG in args)
    try:
        return int(body([a for a in args if a != DEBUG_FLAG]) or 0)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return int(stop.code or 0)
        print(stop.code, file=sys.stderr)  # sys.exit("message"), as the interpreter would show it
        return 1
    except Exception as err:  # one line for people, the traceback on request
        if debug:
            traceback.print_exc()
        print(one_line_error(err, debug), file=sys.stderr)
        return 1


class DropMessages(logging.Filter):
    """A logging filter that drops the records whose message contains ``text``: a line no user can act on (an
    advert, a notice printed for every run), held back by message and nowhere else."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()
