"""W3C Trace Context: the ``traceparent`` a client sends with a goal, so that the goal's trace
joins the client's own (https://www.w3.org/TR/trace-context/). Pure: parsing only.

``00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>``; a value that does not parse
(a bad length, upper-case or non-hex digits, all-zero ids, version ``ff``) is ignored, as the
recommendation asks of a receiver: the goal then has a trace of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TRACEPARENT_HEADER", "TraceParent", "parse_traceparent"]

TRACEPARENT_HEADER = "traceparent"
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: int  # 128 bits
    span_id: int  # 64 bits: the client's span the goal is a child of
    flags: int

    def header(self) -> str:
        """The normalized header value (version 00)."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.flags:02x}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The trace context ``value`` names, or None when it names none."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None  # ff is forbidden; version 00 has exactly four fields
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceParent(trace_id, span_id, int(flags_hex, 16))
