"""Points in time given as text (a ``wait_until`` step, a one-shot schedule). Pure.

RFC 3339 with a zone and nothing looser: ``2026-12-24T18:00:00Z``, ``…18:00:00.5+01:00``. A time
without a zone would mean different moments on different machines, so it is refused, and so are
the other forms Python's ``fromisoformat`` reads (week dates, the basic format, a date alone).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["parse_instant", "utc_text"]

_LOCAL = r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?"
_RFC_3339 = re.compile(_LOCAL + r"([Zz]|[+-]\d{2}:\d{2})?", re.ASCII)
_EXAMPLE = "use RFC 3339, such as 2026-12-24T18:00:00Z"


def parse_instant(text: str) -> datetime:
    """The moment ``text`` names, in UTC. ``ValueError`` with the reason when it names none
    (the message starts with what is wrong, to follow the text it is about)."""
    match = _RFC_3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"is not a time: {_EXAMPLE}")
    day, clock, fraction, zone = match.groups()
    if zone is None:
        raise ValueError("has no time zone: end it with Z or an offset")
    micro = f".{fraction[:6]:0<6}" if fraction else ""
    try:
        when = datetime.fromisoformat(f"{day}T{clock}{micro}{zone.upper().replace('Z', '+00:00')}")
        return when.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"is not a time ({exc}): {_EXAMPLE}") from None


def utc_text(when: datetime) -> str:
    """``when`` in UTC to the second, as RFC 3339 (``2026-12-24T18:00:00Z``)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
