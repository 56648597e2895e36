"""Regular expressions in linear time, for every pattern that meets untrusted text.

Python's ``re`` backtracks: a pattern as plain as ``\\s*[,.]?\\s+then\\s+`` takes cubic time
on a run of spaces, and a submitter's ``(a+)+$`` takes exponential time on forty ``a``\\ s. One
such match freezes the event loop of the service that runs it. RE2 (google-re2) matches in
time linear in the text, whatever the pattern, by giving up what needs backtracking:
lookaround and backreferences. A pattern it cannot run fails to compile with
:class:`PatternError`.

RE2's ``\\s``, ``\\w``, ``\\d`` and ``\\b`` are ASCII; :data:`SPACE` is the class of Unicode
whitespace for patterns that split human text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, cast

import re2

from events.errors import AgoraError

__all__ = [
    "MAX_USER_PATTERN_LENGTH",
    "NOT_SPACE",
    "SPACE",
    "LinearMatch",
    "LinearPattern",
    "PatternError",
    "compile_linear",
    "compile_user_pattern",
]

# Unicode whitespace (what Python's ``\s`` matches), for RE2 patterns.
SPACE = r"[\s\p{Z}\x{85}]"
NOT_SPACE = r"[^\s\p{Z}\x{85}]"

# A submitter's pattern: long enough for any real check, short enough that compiling it is cheap.
MAX_USER_PATTERN_LENGTH = 1_000
# RE2's memory budget for one compiled pattern (its default is 8 MiB).
_USER_PATTERN_MAX_MEM = 2 << 20


class PatternError(AgoraError, ValueError):
    """A pattern RE2 refuses: invalid, too large, or using lookaround or backreferences."""


class LinearMatch(Protocol):
    def group(self, name: str | int = 0, /) -> str: ...
    def start(self, group: int = 0, /) -> int: ...
    def end(self, group: int = 0, /) -> int: ...


class LinearPattern(Protocol):
    @property
    def pattern(self) -> str: ...
    def search(self, text: str, /) -> LinearMatch | None: ...
    def match(self, text: str, /) -> LinearMatch | None: ...
    def fullmatch(self, text: str, /) -> LinearMatch | None: ...
    def split(self, text: str, /) -> list[str]: ...
    def sub(self, replacement: str | Callable[[LinearMatch], str], text: str, /) -> str: ...
    def finditer(self, text: str, /) -> Iterator[LinearMatch]: ...


def _options(*, max_mem: int | None = None) -> object:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is our caller's to report, not stderr's
    if max_mem is not None:
        options.max_mem = max_mem
    return options


def compile_linear(
    pattern: str, *, ignore_case: bool = False, dot_all: bool = False
) -> LinearPattern:
    """Compile one of agora's own patterns; a refusal here is a programming error."""
    flags = ("i" if ignore_case else "") + ("s" if dot_all else "")
    source = f"(?{flags}){pattern}" if flags else pattern
    try:
        return cast(LinearPattern, re2.compile(source, _options()))
    except re2.error as exc:
        raise PatternError(f"RE2 cannot compile {pattern!r}: {_reason(exc)}") from exc


def compile_user_pattern(pattern: str) -> LinearPattern:
    """Compile a pattern someone outside sent; :class:`PatternError` says what to change."""
    if len(pattern) > MAX_USER_PATTERN_LENGTH:
        raise PatternError(
            f"the pattern is {len(pattern)} characters; the limit is {MAX_USER_PATTERN_LENGTH}"
        )
    try:
        return cast(LinearPattern, re2.compile(pattern, _options(max_mem=_USER_PATTERN_MAX_MEM)))
    except re2.error as exc:
        raise PatternError(
            f"{_reason(exc)} (patterns use RE2 syntax: no lookaround such as (?=...) "
            "and no backreferences such as \\1)"
        ) from exc


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    return detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
