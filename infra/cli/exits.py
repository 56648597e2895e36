"""How an ``agora`` command ends: its exit codes, and the two endings that are not errors.

Exit codes: 0 done, 1 a goal failed or something needs attention, 2 an error (the message
says what to do), 3 --wait gave up while the goal runs on, 130 Ctrl-C, 141 a closed pipe."""

from __future__ import annotations

__all__ = [
    "EXIT_CLOSED_PIPE",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_ROWS_CUT",
    "ClosedPipe",
    "Interrupted",
]

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141
# A json or csv result cut at the row limit (its reader may not count the rows).
EXIT_ROWS_CUT = 1


class ClosedPipe(Exception):  # noqa: N818  # the reader left (`| head`), not an error
    """stdout's reader went away; ``main`` exits 141 quietly, as a shell tool would."""


class Interrupted(Exception):  # noqa: N818  # a user's Ctrl-C, not an error of agora's
    """Ctrl-C (or SIGTERM) stopped a command; ``main`` exits 130 without a traceback."""
