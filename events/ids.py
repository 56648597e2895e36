"""Deterministic identifiers.

An event's id is derived from the logical identity of the decision it records (for example
"task s2 of iteration 1 of goal g-7 was scheduled"), namespaced by the producing service. A
redelivered input, or a second replica reaching the same decision, therefore produces the same
id, and JetStream's duplicate window drops the copy. Nothing here reads a clock or a random
source; fresh ids for new commands come in through a port.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_id", "goal_id_for_command"]


def derive_id(*parts: object) -> str:
    """A UUID-shaped id that is a pure function of ``parts`` (the 16 digest bytes in the
    canonical 8-4-4-4-12 form, exactly as ``str(uuid.UUID(bytes=...))`` writes them)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def goal_id_for_command(command_id: str) -> str:
    """The goal id used when an intake command names none: stable across resends."""
    return "g-" + hashlib.blake2b(command_id.encode(), digest_size=8).hexdigest()
