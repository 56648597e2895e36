"""What every AG-UI run agora streams must be: each event valid by the ``ag-ui-protocol``
models, and the run's shape (started first, finished or errored last and once, steps, tool
calls and text messages opened and closed in pairs, state deltas that apply to the snapshot)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from ag_ui.core import Event as AguiEvent
from pydantic import TypeAdapter

__all__ = ["EVENT", "apply_patch", "check_run"]

EVENT: TypeAdapter[Any] = TypeAdapter(AguiEvent)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def apply_patch(document: dict[str, Any], ops: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add / replace / remove on objects (what agora's deltas use)."""
    result = copy.deepcopy(document)
    for op in ops:
        *parents, last = [_unescape(t) for t in op["path"].split("/")[1:]]
        target = result
        for token in parents:
            target = target[token]
        if op["op"] == "remove":
            del target[last]
        elif op["op"] == "replace":
            assert last in target, f"replace of a missing {op['path']}"
            target[last] = op["value"]
        else:
            assert op["op"] == "add", op
            target[last] = op["value"]
    return result


def check_run(wire: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Validate a run's events (as JSON objects, the wire's camelCase); the final state."""
    events = [EVENT.validate_python(e) for e in wire]
    types = [e["type"] for e in wire]
    assert types[0] == "RUN_STARTED", types[:3]
    assert types[-1] in ("RUN_FINISHED", "RUN_ERROR"), types[-3:]
    assert types.count("RUN_STARTED") == 1
    assert types.count("RUN_FINISHED") + types.count("RUN_ERROR") == 1
    steps: set[str] = set()
    calls: dict[str, str] = {}  # id -> phase: started, args, ended
    answered: set[str] = set()
    texts: set[str] = set()
    state: dict[str, Any] | None = None
    for event, raw in zip(events, wire, strict=True):
        kind = raw["type"]
        if kind == "STEP_STARTED":
            assert raw["stepName"] not in steps, f"step {raw['stepName']} started twice"
            steps.add(raw["stepName"])
        elif kind == "STEP_FINISHED":
            steps.remove(raw["stepName"])
        elif kind == "TOOL_CALL_START":
            assert raw["toolCallId"] not in calls
            calls[raw["toolCallId"]] = "started"
        elif kind == "TOOL_CALL_ARGS":
            assert calls[raw["toolCallId"]] in ("started", "args")
            calls[raw["toolCallId"]] = "args"
        elif kind == "TOOL_CALL_END":
            assert calls[raw["toolCallId"]] in ("started", "args")
            calls[raw["toolCallId"]] = "ended"
        elif kind == "TOOL_CALL_RESULT":
            assert calls.get(raw["toolCallId"]) == "ended", "a result before its call ended"
            assert raw["toolCallId"] not in answered
            answered.add(raw["toolCallId"])
        elif kind == "TEXT_MESSAGE_START":
            assert raw["messageId"] not in texts
            texts.add(raw["messageId"])
        elif kind == "TEXT_MESSAGE_CONTENT":
            assert raw["messageId"] in texts
        elif kind == "TEXT_MESSAGE_END":
            texts.remove(raw["messageId"])
        elif kind == "STATE_SNAPSHOT":
            state = raw["snapshot"]
        elif kind == "STATE_DELTA":
            assert state is not None, "a delta before any snapshot"
            state = apply_patch(state, raw["delta"])
        assert event.type.value == kind
    assert not steps, f"steps never finished: {steps}"
    assert set(calls) == answered, "a tool call without its result"
    assert set(calls.values()) <= {"ended"}
    assert not texts, f"text messages never ended: {texts}"
    return state or {}
