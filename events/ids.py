"""Deterministic identifiers.

An event's id is derived from the logical identity of the decision it records (for example
"task s2 of iteration 1 of goal g-7 was scheduled"), namespaced by the producing service. A
redelivered input, or a second replica reaching the same decision, therefore produces the same
id, and JetStream's duplicate window drops the copy. Nothing here reads a clock or a random
source; fresh ids for new commands come in through a port.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["derive_id", "goal_id_for_command"]


def derive_id(*parts: object) -> str:
    """A UUID-shaped id that is a pure function of ``parts``."""
    material = "\x1f".join(str(part) for part in parts).encode()
    return str(uuid.UUID(bytes=hashlib.blake2b(material, digest_size=16).digest()))


def goal_id_for_command(command_id: str) -> str:
    """The goal id used when an intake command names none: stable across resends."""
    return "g-" + hashlib.blake2b(command_id.encode(), digest_size=8).hexdigest()
