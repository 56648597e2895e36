"""Subject and stream names: the bus layout of ARCHITECTURE.md, in one place."""

from __future__ import annotations

import re

__all__ = [
    "COMMANDS_GOAL_ID",
    "DLQ_STREAM",
    "EVENTS_STREAM",
    "INTAKE_APPROVAL",
    "INTAKE_CANCEL",
    "INTAKE_DEADLINE_PREFIX",
    "INTAKE_GOAL",
    "INTAKE_MESSAGE",
    "INTAKE_PAUSE",
    "INTAKE_RESUME",
    "INTAKE_STREAM",
    "INTAKE_TIMER_PREFIX",
    "INTAKE_WAKEUP",
    "QUERY_SUBJECT",
    "SUBJECT_TOKEN",
    "TOOLS_LISTED_FILTER",
    "dlq_subject",
    "event_subject",
    "event_type_filter",
    "goal_events_filter",
    "goal_id_from_subject",
    "is_inbox_reply",
    "is_reserved_goal_id",
    "is_subject_token",
    "lease_goal_id",
    "lease_subject",
    "tools_goal_id",
]

INTAKE_STREAM = "AGORA_INTAKE"
EVENTS_STREAM = "AGORA_EVENTS"
DLQ_STREAM = "AGORA_DLQ"

INTAKE_GOAL = "agora.intake.goal"
# Steering a goal that runs: cancel it, pause it, resume it (events/control_commands.py).
INTAKE_CANCEL = "agora.intake.cancel"
INTAKE_PAUSE = "agora.intake.pause"
INTAKE_RESUME = "agora.intake.resume"
# Input for a goal that runs (events/message_commands.py), handled by the goal's policy.
INTAKE_MESSAGE = "agora.intake.message"
# Answers to approval requests (events/approval_commands.py), and where the planner stores the
# scheduled deny that nats-server delivers there when an approval's deadline passes.
INTAKE_APPROVAL = "agora.intake.approval"
INTAKE_DEADLINE_PREFIX = "agora.intake.deadline."
# Durable timers (events/timers.py): each waits as a scheduled message on
# agora.intake.timer.<timer_id>, which nats-server republishes to agora.intake.wakeup when due.
# Only the executor writes either; clients may not.
INTAKE_TIMER_PREFIX = "agora.intake.timer."
INTAKE_WAKEUP = "agora.intake.wakeup"
# Where a command's rejection is recorded when the goal it names does not exist: a reserved id,
# so that the rejection never takes the goal id (a goal's first event must be its own).
COMMANDS_GOAL_ID = "_intake"
QUERY_SUBJECT = "agora.query"

# A goal id must be usable as one subject token. The pattern is also the JSON Schema's (where
# ``$`` is the end of the text); check with :func:`is_subject_token`, since Python's ``$`` also
# matches before a final newline and ``"abc\n"`` is no subject token.
SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def is_subject_token(text: str) -> bool:
    """Is ``text`` one subject token agora accepts as an id (letters, digits, ``-``, ``_``)?"""
    return _SUBJECT_TOKEN.fullmatch(text) is not None


def is_reserved_goal_id(goal_id: str) -> bool:
    """Goal ids starting with ``_`` belong to the platform (leases, unattributed memory)."""
    return goal_id.startswith("_")


def tools_goal_id(server: str) -> str:
    """Where an MCP server's (or an A2A agent's) ``tools_listed`` events are recorded (one
    subject per server)."""
    return f"_mcp_{server}"


# Every server's listings.
TOOLS_LISTED_FILTER = "agora.events.*.tools_listed"


def lease_goal_id(service: str) -> str:
    return f"_{service}"


def lease_subject(service: str) -> str:
    """Where ``service``'s active replica records its lease; its writes are fenced on it."""
    return event_subject(lease_goal_id(service), "lease_acquired")


def event_subject(goal_id: str, event_type: str) -> str:
    return f"agora.events.{goal_id}.{event_type}"


def event_type_filter(event_type: str) -> str:
    """Every goal's events of one type."""
    return f"agora.events.*.{event_type}"


def goal_events_filter(goal_id: str) -> str:
    return f"agora.events.{goal_id}.>"


def goal_id_from_subject(subject: str) -> str | None:
    parts = subject.split(".")
    if len(parts) >= 4 and parts[0] == "agora" and parts[1] == "events":
        return parts[2]
    return None


def dlq_subject(consumer: str) -> str:
    return f"agora.dlq.{consumer}"


# Where a service may send an answer: an inbox, never a subject a stream records. The first
# token is ``_INBOX`` (every NATS library's default prefix), ``_INBOX_<name>`` (agora's
# per-identity prefixes) or ``_R_`` (the reply nats-server gives a request that came from the
# clients' account); the rest are literal tokens. No stream captures these, so an answer can
# never become an event, a dead letter or a JetStream API request.
_INBOX_REPLY = re.compile(r"(?:_INBOX(?:_[A-Za-z0-9-]{1,64})?|_R_)(?:\.[A-Za-z0-9_-]{1,64}){1,8}")
MAX_REPLY_LENGTH = 256


def is_inbox_reply(reply: str) -> bool:
    """True when ``reply`` names an inbox, the only place a service sends an answer."""
    return len(reply) <= MAX_REPLY_LENGTH and _INBOX_REPLY.fullmatch(reply) is not None
