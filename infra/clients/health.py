"""What ``agora status`` concludes from what it gathered: pure functions, no I/O.

- **Storage against its limits.** JetStream refuses every write once a limit is reached, and
  then every handler fails without progress while the services still answer. Each limit that
  applies is checked: the account's ``max_storage``, the server's ``max_file_store`` (from
  its monitoring port), each stream's ``max_bytes`` and, for a store on this machine, the
  disk's free space. Above :data:`WARN_RATIO` it is a problem; full (less than one message
  of room left, or :data:`FULL_RATIO`) it says that writes are refused.
- **Stalled consumers.** A durable consumer with work waiting (pending or unacknowledged)
  that has acknowledged nothing for ``stall_after_s`` is stalled, whether its service is
  down, failing every message, or stuck.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "FULL_RATIO",
    "WARN_RATIO",
    "StorageLimit",
    "stalled_consumers",
    "storage_problems",
]

WARN_RATIO = 0.9
FULL_RATIO = 0.99


@dataclass(frozen=True, slots=True)
class StorageLimit:
    what: str  # "JetStream account storage", "stream AGORA_EVENTS", "disk of /data"
    used: int
    limit: int  # <= 0: no limit

    @property
    def ratio(self) -> float:
        return self.used / self.limit if self.limit > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"what": self.what, "used": self.used, "limit": self.limit}


def storage_problems(limits: Iterable[StorageLimit], *, room_bytes: int) -> list[str]:
    """A problem for each limit nearly or wholly reached; ``room_bytes``: one message."""
    problems = []
    for limit in limits:
        if limit.limit <= 0:
            continue
        share = f"{limit.used:,} of {limit.limit:,} bytes"
        if limit.limit - limit.used < room_bytes or limit.ratio >= FULL_RATIO:
            problems.append(
                f"{limit.what} is full ({share}): new events are refused and handlers fail "
                "without progress; free space, raise the limit, or move old data out"
            )
        elif limit.ratio >= WARN_RATIO:
            problems.append(f"{limit.what} is {limit.ratio:.0%} full ({share})")
    return problems


def stalled_consumers(
    rows: Iterable[Mapping[str, Any]], *, now: datetime, stall_after_s: float
) -> list[str]:
    """A problem for each consumer with waiting work and no acknowledgement for a while."""
    problems = []
    for row in rows:
        if not row.get("provisioned"):
            continue
        waiting = int(row.get("pending", 0)) + int(row.get("ack_pending", 0))
        if waiting == 0:
            continue
        # Last acknowledgement; a consumer that never acked counts from its first delivery,
        # or from its creation when nothing was ever delivered.
        since = row.get("last_ack") or row.get("last_delivered") or row.get("created")
        if not isinstance(since, datetime):
            continue
        idle_s = (now - since).total_seconds()
        if idle_s >= stall_after_s:
            problems.append(
                f"consumer {row['stream']}/{row['consumer']} is stalled: {waiting} message(s) "
                f"waiting, nothing acknowledged for {idle_s:.0f}s"
            )
    return problems
