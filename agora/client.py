"""The agora client: connect, ``submit``, ``follow``, ``wait``, ``cancel`` / ``pause`` /
``resume`` (and their ``answer``), ``query``, ``trajectory``.

    from agora.client import AgoraClient

    async with await AgoraClient.connect() as client:  # settings from AGORA_* (`agora env`)
        submitted = await client.submit({"text": "compute 17*23", "expect": {"contains": "391"}})
        outcome = await client.wait(submitted.goal_id, timeout_s=60)

Every error it raises is an :class:`agora.client.AgoraError` (docs/errors.md).
"""

from events.errors import AgoraError
from events.model import Event, event_type
from infra.clients.goals import (
    AgoraClient,
    CommandSent,
    CommandTimeoutError,
    GoalTimeoutError,
    InvalidGoalIdError,
    Outcome,
    SubmitError,
    Submitted,
    is_terminal,
)
from infra.clients.query import QueryFailedError
from infra.settings import Settings
from projections.protocol import QueryReply

__all__ = [
    "AgoraClient",
    "AgoraError",
    "CommandSent",
    "CommandTimeoutError",
    "Event",
    "GoalTimeoutError",
    "InvalidGoalIdError",
    "Outcome",
    "QueryFailedError",
    "QueryReply",
    "Settings",
    "SubmitError",
    "Submitted",
    "event_type",
    "is_terminal",
]
