"""The ``agora`` command's two consoles (rich), a closed pipe raising :class:`ClosedPipe`."""

from __future__ import annotations

from rich.console import Console

from infra.cli.exits import ClosedPipe

__all__ = ["err", "out"]


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's default exits 1; a closed pipe is 141 for every agora command.
        self.quiet = True
        raise ClosedPipe


# emoji=False: a value such as ":smile:" in a query's rows is printed as it is, not as an
# emoji (and rich's emoji table, ~1.6 ms to import, stays unloaded).
out = _Console(emoji=False)
err = _Console(stderr=True, soft_wrap=True, emoji=False)  # one line each: grep-able, copyable
