"""agora's MCP server, the pure parts: who may connect over HTTP, and what the tools answer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from events.catalog import GoalAccepted, GoalCancelled, GoalCompleted, GoalFailed
from events.errors import ConfigurationError
from events.model import Event
from infra.mcp_server.auth import StaticTokenVerifier, is_loopback, resolve_token
from infra.mcp_server.results import (
    goal_outcome,
    progress_line,
    rows_of,
    still_running,
    view_schema,
)
from projections.protocol import QueryReply

TOKEN = "a-token-long-enough-1234"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("mcp.example.com", False),
    ],
)
def test_only_loopback_addresses_keep_the_endpoint_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_token_comes_from_the_environment_first_then_the_file(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text("  from-the-file-0123456789\n")
    generated = tmp_path / "generated"
    from_env = resolve_token(token=TOKEN, token_file=file, host="0.0.0.0", generated_path=generated)
    assert (from_env.value, from_env.source) == (TOKEN, "AGORA_MCP_TOKEN")
    from_file = resolve_token(token=None, token_file=file, host="0.0.0.0", generated_path=generated)
    assert (from_file.value, from_file.source) == ("from-the-file-0123456789", str(file))
    assert not generated.exists()


def test_no_token_on_another_address_refuses_and_a_short_one_too(tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    with pytest.raises(ConfigurationError, match="needs a bearer token"):
        resolve_token(token=None, token_file=None, host="0.0.0.0", generated_path=generated)
    with pytest.raises(ConfigurationError, match="too short"):
        resolve_token(token="short", token_file=None, host="127.0.0.1", generated_path=generated)
    with pytest.raises(ConfigurationError, match="cannot read"):
        resolve_token(
            token=None, token_file=tmp_path / "absent", host="::1", generated_path=generated
        )
    assert not generated.exists()


def test_on_loopback_without_a_token_one_is_made_once_for_its_owner_only(tmp_path: Path) -> None:
    generated = tmp_path / "mcp" / "token"
    made = resolve_token(token=None, token_file=None, host="127.0.0.1", generated_path=generated)
    assert len(made.value) >= 32
    assert generated.stat().st_mode & 0o777 == 0o600
    again = resolve_token(token=None, token_file=None, host="localhost", generated_path=generated)
    assert again.value == made.value


async def test_the_verifier_accepts_the_token_and_nothing_else() -> None:
    verifier = StaticTokenVerifier(TOKEN)
    accepted = await verifier.verify_token(TOKEN)
    assert accepted is not None
    assert accepted.client_id == "agora-mcp-client"
    for wrong in ("", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        assert await verifier.verify_token(wrong) is None


def _envelope(n: int) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "goal_id": "g-1",
        "occurred_at": datetime(2026, 12, 7, tzinfo=UTC),
        "causation_id": None,
        "correlation_id": "g-1",
        "producer": "planner@1",
    }


def _accepted() -> Event:
    return GoalAccepted(**_envelope(1), command_id="c-1", text="compute 17*23")


def test_a_completed_goal_answers_its_result_and_a_failed_one_its_reason() -> None:
    done = GoalCompleted(**_envelope(2), result="391", iterations=1, score=1.0)
    outcome = goal_outcome("g-1", [_accepted(), done], last_seq=42)
    assert outcome == {
        "goal_id": "g-1",
        "finished": True,
        "status": "completed",
        "final_event": "goal_completed",
        "events": 2,
        "last_seq": 42,
        "result": "391",
        "score": 1.0,
        "iterations": 1,
    }
    failed = GoalFailed(**_envelope(2), reason="budget exceeded", iterations=2)
    assert goal_outcome("g-1", [_accepted(), failed], 7)["reason"] == "budget exceeded"
    cancelled = GoalCancelled(**_envelope(2), command_id="c-2", reason="not needed")
    assert goal_outcome("g-1", [cancelled], 7)["status"] == "cancelled"


def test_a_goal_still_running_says_so_and_one_never_seen_says_check_the_id() -> None:
    running = still_running("g-1", [_accepted()], 5.0)
    assert (running["finished"], running["status"], running["last_event"]) == (
        False,
        "running",
        "goal_accepted",
    )
    assert "call wait_goal again" in running["note"]
    unseen = still_running("g-x", [], 5.0)
    assert unseen["status"] == "unknown"
    assert "check the goal id" in unseen["note"]


def test_progress_names_the_event_and_summarizes_it() -> None:
    line = progress_line(_accepted())
    assert line.startswith("goal_accepted: ")
    assert "compute 17*23" in line


def test_rows_become_objects_and_describe_becomes_columns() -> None:
    reply = QueryReply(columns=["status", "n"], rows=[["completed", 2], ["failed", 1]])
    assert rows_of(reply) == [{"status": "completed", "n": 2}, {"status": "failed", "n": 1}]
    describe = QueryReply(
        columns=["column_name", "column_type", "null", "key", "default", "extra"],
        rows=[
            ["goal_id", "VARCHAR", "NO", "PRI", None, None],
            ["score", "DOUBLE", "YES"] + [None] * 3,
        ],
    )
    assert view_schema("goals", describe) == {
        "view": "goals",
        "columns": [{"name": "goal_id", "type": "VARCHAR"}, {"name": "score", "type": "DOUBLE"}],
    }


async def test_submit_goal_lists_the_intake_commands_own_schema() -> None:
    import msgspec
    from nats.aio.client import Client as NatsClient

    from events.commands import GoalCommand
    from infra.clients.goals import AgoraClient
    from infra.mcp_server.server import TOOL_NAMES, build_server

    server = build_server(AgoraClient(NatsClient()))  # listing tools sends nothing
    tools = {tool.name: tool for tool in await server.list_tools()}
    assert set(tools) == set(TOOL_NAMES)
    schema = tools["submit_goal"].input_schema
    properties = schema["properties"]
    # Every field of the intake command but forked_from (that is `agora fork`'s) is offered.
    offered = {field.name for field in msgspec.structs.fields(GoalCommand)} - {"forked_from"}
    assert set(properties) == offered
    assert schema["required"] == ["text"]
    [steps, _null] = properties["steps"]["anyOf"]
    step = steps["items"]
    assert step["required"] == ["tool"]
    assert step["additionalProperties"] is False
    assert step["properties"]["id"]["anyOf"][0]["pattern"] == "^[A-Za-z0-9_-]{1,128}$"
    assert "$ref" not in str(schema)  # one self-contained document
    assert properties["max_iterations"]["maximum"] == 10
    assert properties["goal_id"]["description"].startswith("letters, digits")
