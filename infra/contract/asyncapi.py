"""The wire contract as an AsyncAPI 3 document (``agora schema --asyncapi``).

Built from the code that defines the contract, never written by hand: the event catalogue
(events/catalog.py) and intake commands give the channels' messages and their JSON Schemas,
events/subjects.py the addresses, infra/platform/auth.py the permissions each identity has.
A test fails when an event type is missing, and CI validates the document with the AsyncAPI
project's own parser (scripts/node/validate-asyncapi.js).
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec

from events.approval_commands import ApprovalAnswer
from events.catalog import EVENT_TYPES
from events.commands import GoalCommand
from events.control_commands import CONTROL_SUBJECTS
from events.memory_commands import INTAKE_MEMORY_FORGET, ForgetCommand
from events.message_commands import MessageCommand
from events.subjects import (
    DLQ_STREAM,
    EVENTS_STREAM,
    INTAKE_APPROVAL,
    INTAKE_GOAL,
    INTAKE_MESSAGE,
    INTAKE_STREAM,
    INTAKE_TIMER_PREFIX,
    INTAKE_WAKEUP,
    QUERY_SUBJECT,
)
from events.timers import Wakeup
from infra.bus.dlq import DeadLetter
from infra.llm.chain import LiveDelta
from infra.platform.auth import EVENT_OWNERS, IDENTITIES, permissions
from infra.platform.topology import MANIFESTS
from projections.protocol import QueryReply, QueryRequest
from services.memory.protocol import MEMORY_QUERY, MemoryReply, MemoryRequest

__all__ = ["asyncapi_document"]

_REF = re.compile(r"^#/\$defs/")
_MSG_ID = {
    "type": "string",
    "description": "JetStream de-duplication id; a resend with the same id is dropped",
}
_GUARD_SEQ = {
    "type": "string",
    "description": "optimistic concurrency: the publish is refused unless the last message on "
    "Nats-Expected-Last-Subject-Sequence-Subject has this stream sequence",
}
_GUARD_SUBJECT = {
    "type": "string",
    "description": "the subject (filter) Nats-Expected-Last-Subject-Sequence refers to",
}


# Steering commands: (subject, what it does, its schema), one channel each.
_CONTROLS = [(subject, action, schema) for subject, (action, schema) in CONTROL_SUBJECTS.items()]
_CONTROL_SCHEMAS = [schema for _, _, schema in _CONTROLS]
_CONTROL_SUMMARIES = {
    "cancel": "cancel a goal: running tasks stop, goal_cancelled ends it",
    "pause": "pause a goal: nothing new is scheduled until it is resumed",
    "resume": "resume a paused goal from where it stopped",
}


def _package_version() -> str:
    try:
        return version("agora")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _rebased(value: Any) -> Any:
    """msgspec's ``#/$defs/X`` references, pointed at ``#/components/schemas/X``."""
    if isinstance(value, dict):
        return {
            k: _REF.sub("#/components/schemas/", v) if k == "$ref" else _rebased(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rebased(v) for v in value]
    return value


def _schemas() -> tuple[dict[str, Any], dict[str, str]]:
    """Every payload schema by name, and the schema name of each event type."""
    commands = [GoalCommand, ForgetCommand, *_CONTROL_SCHEMAS, ApprovalAnswer, MessageCommand]
    types: list[Any] = [
        *commands,
        *EVENT_TYPES.values(),
        Wakeup,
        QueryRequest,
        QueryReply,
        MemoryRequest,
        MemoryReply,
        DeadLetter,
        LiveDelta,
    ]
    roots, defs = msgspec.json.schema_components(types)
    schemas = {name: _rebased(schema) for name, schema in defs.items()}
    event_schema = {}
    first = len(commands)
    for tag, root in zip(EVENT_TYPES, roots[first : first + len(EVENT_TYPES)], strict=True):
        event_schema[tag] = root["$ref"].rsplit("/", 1)[-1]
    return schemas, event_schema


_TRACEPARENT = {
    "type": "string",
    "description": "optional W3C trace context (00-<trace id>-<span id>-<flags>): the goal's "
    "trace becomes a child of that span; a value that is not trace context is ignored",
}


def _headers(*, guarded: bool, msg_id: str, traced: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {"Nats-Msg-Id": {**_MSG_ID, "description": msg_id}}
    if traced:
        properties["traceparent"] = _TRACEPARENT
    if guarded:
        properties["Nats-Expected-Last-Subject-Sequence"] = _GUARD_SEQ
        properties["Nats-Expected-Last-Subject-Sequence-Subject"] = _GUARD_SUBJECT
    return {"type": "object", "properties": properties, "required": ["Nats-Msg-Id"]}


def _message(name: str, schema: str, summary: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{schema}"},
        **extra,
    }


def _messages(event_schema: dict[str, str]) -> dict[str, Any]:
    messages = {
        "GoalCommand": _message(
            "GoalCommand",
            "GoalCommand",
            "submit a goal; only text is required",
            headers=_headers(guarded=False, msg_id="the command's command_id", traced=True),
        ),
        "ForgetCommand": _message(
            "ForgetCommand",
            "ForgetCommand",
            "tell memory to forget items",
            headers=_headers(guarded=False, msg_id="the command's command_id"),
        ),
        **{
            schema.__name__: _message(
                schema.__name__,
                schema.__name__,
                _CONTROL_SUMMARIES[action],
                headers=_headers(guarded=False, msg_id="the command's command_id"),
            )
            for _, action, schema in _CONTROLS
        },
        "ApprovalAnswer": _message(
            "ApprovalAnswer",
            "ApprovalAnswer",
            "approve (optionally with edited arguments) or deny a tool call that waits",
            headers=_headers(guarded=False, msg_id="the answer's command_id"),
        ),
        "MessageCommand": _message(
            "MessageCommand",
            "MessageCommand",
            "input for a goal that runs, handled by the policy the goal was submitted with",
            headers=_headers(guarded=False, msg_id="the message's command_id"),
        ),
        "Wakeup": _message(
            "Wakeup",
            "Wakeup",
            "a durable timer: stored with Nats-Schedule @at, republished when due",
            headers={
                "type": "object",
                "properties": {
                    "Nats-Msg-Id": {**_MSG_ID, "description": "the timer's id"},
                    "Nats-Schedule": {"type": "string", "description": "@at <RFC 3339 UTC>"},
                    "Nats-Schedule-Target": {"type": "string", "const": INTAKE_WAKEUP},
                },
            },
        ),
        "QueryRequest": _message("QueryRequest", "QueryRequest", "read-only SQL over the views"),
        "QueryReply": _message("QueryReply", "QueryReply", "rows, or the reason for a refusal"),
        "MemoryRequest": _message("MemoryRequest", "MemoryRequest", "search long-term memory"),
        "MemoryReply": _message("MemoryReply", "MemoryReply", "recalled items with provenance"),
        "DeadLetter": _message(
            "DeadLetter",
            "DeadLetter",
            "a message a consumer gave up on: original bytes, headers and the reason",
            headers=_headers(guarded=False, msg_id="the record's id"),
        ),
        "LiveDelta": _message(
            "LiveDelta", "LiveDelta", "token-by-token model output (core NATS, not stored)"
        ),
    }
    for tag, schema in event_schema.items():
        messages[tag] = _message(
            tag,
            schema,
            f"the {tag} event",
            headers=_headers(guarded=True, msg_id="the event's event_id (deterministic)"),
            **{"x-agora-publishers": list(EVENT_OWNERS.get(tag, ()))},
        )
    return messages


def _refs(names: list[str], prefix: str) -> dict[str, Any]:
    return {name: {"$ref": f"{prefix}{name}"} for name in names}


def _channels(event_types: list[str]) -> dict[str, Any]:
    goal_id = {"description": "one subject token: letters, digits, '-' and '_'"}
    return {
        "intakeGoal": {
            "address": INTAKE_GOAL,
            "title": "submit a goal",
            "description": f"A JetStream publish onto stream {INTAKE_STREAM}; the planner "
            "validates the command, a bad one becomes goal_rejected with the reason.",
            "messages": _refs(["GoalCommand"], "#/components/messages/"),
        },
        "intakeMemoryForget": {
            "address": INTAKE_MEMORY_FORGET,
            "description": f"A JetStream publish onto stream {INTAKE_STREAM}.",
            "messages": _refs(["ForgetCommand"], "#/components/messages/"),
        },
        **{
            f"intake{action.capitalize()}": {
                "address": subject,
                "title": f"{action} a goal",
                "description": f"A JetStream publish onto stream {INTAKE_STREAM}. The planner "
                f"records it on the goal as {action}_requested and answers it there; a "
                "command for a goal that does not exist is rejected (command_rejected on "
                "the reserved goal id _intake).",
                "messages": _refs([schema.__name__], "#/components/messages/"),
            }
            for subject, action, schema in _CONTROLS
        },
        "intakeApproval": {
            "address": INTAKE_APPROVAL,
            "title": "answer an approval request",
            "description": f"A JetStream publish onto stream {INTAKE_STREAM}. The planner "
            "records it on the goal the approval id names as approval_answered and decides "
            "there: approval_granted, approval_denied, or approval_rejected (an unknown or "
            "already answered request, edited arguments that do not fit the tool; on the "
            "reserved goal id _intake when the goal does not exist).",
            "messages": _refs(["ApprovalAnswer"], "#/components/messages/"),
        },
        "intakeMessage": {
            "address": INTAKE_MESSAGE,
            "title": "send input to a goal that runs",
            "description": f"A JetStream publish onto stream {INTAKE_STREAM}. The planner "
            "records it on its goal as message_received and answers there by the goal's "
            "on_message policy: message_queued (enqueue), iteration_interrupted (interrupt), "
            "or message_rejected (policy reject, a goal that ended; on the reserved goal id "
            "_intake when the goal does not exist).",
            "messages": _refs(["MessageCommand"], "#/components/messages/"),
        },
        "timers": {
            "address": INTAKE_TIMER_PREFIX + "{timer_id}",
            "title": "durable timers",
            "description": f"Scheduled messages on stream {INTAKE_STREAM}: a long sleep's "
            "timer, kept by nats-server and republished to agora.intake.wakeup when due. "
            "Written by the executor only.",
            "parameters": {"timer_id": {"description": "the timer_started event's id"}},
            "messages": _refs(["Wakeup"], "#/components/messages/"),
        },
        "timerWakeups": {
            "address": INTAKE_WAKEUP,
            "title": "timers that fell due",
            "description": "Republished by nats-server from a timer; the executor's durable "
            "consumer finishes the waiting task (or ignores a duplicate).",
            "messages": _refs(["Wakeup"], "#/components/messages/"),
        },
        "events": {
            "address": "agora.events.{goal_id}.{event_type}",
            "title": "the event log",
            "description": f"Stream {EVENTS_STREAM}, the system of record. Follow one goal "
            "from its first event with an ordered consumer on agora.events.<goal_id>.> "
            "(a named create: any name but a service's durable), or live with a core "
            "subscription on the same subject.",
            "parameters": {
                "goal_id": goal_id,
                "event_type": {"enum": event_types, "description": "the event's type tag"},
            },
            "messages": _refs(event_types, "#/components/messages/"),
        },
        "live": {
            "address": "agora.live.{goal_id}.llm",
            "description": "Core NATS, not stored: model output as it is generated.",
            "parameters": {"goal_id": goal_id},
            "messages": _refs(["LiveDelta"], "#/components/messages/"),
        },
        "query": {
            "address": QUERY_SUBJECT,
            "description": "Request/reply, queue group projector.",
            "messages": _refs(["QueryRequest"], "#/components/messages/"),
        },
        "queryReply": {
            "address": None,
            "description": "The requester's inbox.",
            "messages": _refs(["QueryReply"], "#/components/messages/"),
        },
        "memoryQuery": {
            "address": MEMORY_QUERY,
            "description": "Request/reply to the memory service.",
            "messages": _refs(["MemoryRequest"], "#/components/messages/"),
        },
        "memoryReply": {
            "address": None,
            "description": "The requester's inbox.",
            "messages": _refs(["MemoryReply"], "#/components/messages/"),
        },
        "deadLetters": {
            "address": "agora.dlq.{consumer}",
            "description": f"Stream {DLQ_STREAM}: one record per message a consumer gave up on.",
            "parameters": {"consumer": {"description": "the consumer that gave up"}},
            "messages": _refs(["DeadLetter"], "#/components/messages/"),
        },
    }


def _operation(
    action: str, channel: str, summary: str, identities: list[str], **extra: Any
) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "security": [{"$ref": "#/components/securitySchemes/user_password"}],
        "x-agora-identities": identities,
        **extra,
    }


def _operations() -> dict[str, Any]:
    owners = sorted({o for owned in EVENT_OWNERS.values() for o in owned})
    readers = ["client", *owners, "projector"]
    return {
        "submitGoal": _operation("send", "intakeGoal", "submit a goal", ["client"]),
        "forgetMemory": _operation("send", "intakeMemoryForget", "forget items", ["client"]),
        **{
            f"{action}Goal": _operation(
                "send", f"intake{action.capitalize()}", _CONTROL_SUMMARIES[action], ["client"]
            )
            for _, action, _ in _CONTROLS
        },
        "answerApproval": _operation(
            "send", "intakeApproval", "approve or deny a tool call that waits", ["client"]
        ),
        "sendMessage": _operation(
            "send", "intakeMessage", "send input to a goal that runs", ["client"]
        ),
        "armTimer": _operation("send", "timers", "store a durable timer", ["executor"]),
        "wakeTask": _operation("receive", "timerWakeups", "finish a task on time", ["executor"]),
        "appendEvent": _operation("send", "events", "a service appends an event it owns", owners),
        "followEvents": _operation(
            "receive", "events", "follow the log or one goal", sorted(set(readers))
        ),
        "receiveLive": _operation(
            "receive",
            "live",
            "follow model output live",
            ["client", *(name for name, m in MANIFESTS.items() if m.live)],
        ),
        "query": _operation(
            "send",
            "query",
            "ask the projector",
            ["client"],
            reply={"channel": {"$ref": "#/channels/queryReply"}},
        ),
        "askMemory": _operation(
            "send",
            "memoryQuery",
            "search memory",
            ["client"],
            reply={"channel": {"$ref": "#/channels/memoryReply"}},
        ),
        "readDeadLetters": _operation(
            "receive", "deadLetters", "inspect dead letters", ["client", "admin"]
        ),
    }


def _permission_table() -> dict[str, Any]:
    table: dict[str, Any] = {}
    for identity in IDENTITIES:
        perms = permissions(identity)
        table[identity] = (
            "everything"
            if perms is None
            else {
                "publish_allow": list(perms.publish_allow),
                "publish_deny": list(perms.publish_deny),
                "subscribe_allow": list(perms.subscribe_allow),
            }
        )
    return table


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every subject agora uses, as a JSON-able dict."""
    schemas, event_schema = _schemas()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "agora",
            "version": _package_version(),
            "description": "The wire contract of agora, an event-sourced multi-agent platform "
            "on NATS JetStream: every subject, its messages' JSON Schemas, the headers and who "
            "may use it. Clients connect as user `client` (`agora env` prints the URL and "
            "password).",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "the embedded nats-server of `agora up` (AGORA_NATS_PORT)",
                "security": [{"$ref": "#/components/securitySchemes/user_password"}],
            }
        },
        "channels": _channels(list(event_schema)),
        "operations": _operations(),
        "components": {
            "schemas": schemas,
            "messages": _messages(event_schema),
            "securitySchemes": {
                "user_password": {
                    "type": "userPassword",
                    "description": "one identity per service, plus admin and client; "
                    "x-agora-permissions has each identity's NATS permissions",
                }
            },
        },
        "x-agora-permissions": _permission_table(),
    }
