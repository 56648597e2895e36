"""MCP tools without I/O: configuration, listings as specs, results, grants, the catalogue,
wire names for providers, and the executor's refusal of an ungranted untrusted tool."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp_types import CallToolResult, ImageContent, TextContent, Tool

from events.catalog import ListedTool, TaskFailed, ToolCalled, ToolsListed
from events.commands import parse_goal_command
from events.errors import ConfigurationError, ToolError
from events.tool_catalogue import with_listed
from events.tools import BUILTIN_TOOLS, EchoArgs, ToolSpec, argument_problems, external_tool
from infra.llm.tool_names import WireNames
from infra.mcp import McpConnection, listing_event
from infra.mcp.config import parse_servers, resolve_headers
from infra.mcp.listing import Listing, result_of, specs_of
from services.executor.registry import RegisteredTool, ToolRegistry
from services.executor.runner import ToolRunner, cap_result, grant_refusal
from services.executor.tools.context import ToolContext, ToolResult
from services.llm.messages import ChatMessage, LlmReply, LlmRequest, ToolCall, ToolDefinition
from services.planner.intake import accept_goal
from services.planner.llm_plan import parse_plan, visible_tools
from tests.unit.test_executor_handler import PRODUCER, Stream, deliver, scheduled

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TZ_SCHEMA = {
    "type": "object",
    "properties": {"timezone": {"type": "string"}},
    "required": ["timezone"],
}
NOW_TOOL = external_tool("time.now", "the time", TZ_SCHEMA, origin="mcp:time")
TOOLS: dict[str, ToolSpec] = {**BUILTIN_TOOLS, "time.now": NOW_TOOL}


def servers(**config: Any) -> str:
    return json.dumps({"mcpServers": config})


# -- configuration -------------------------------------------------------------------------


def test_servers_come_inline_or_from_a_file(tmp_path: Path) -> None:
    inline = servers(time={"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]})
    [time] = parse_servers(inline)
    assert (time.name, time.transport, time.describe()) == (
        "time",
        "stdio",
        "mcp-server-time --local-timezone UTC",
    )
    assert (time.trusted, time.timeout_s, time.origin) == (False, 30.0, "mcp:time")
    path = tmp_path / "mcp.json"
    path.write_text(servers(docs={"url": "https://docs.example/mcp", "timeout_s": 5}))
    [docs] = parse_servers(str(path))
    assert (docs.transport, docs.timeout_s) == ("streamable-http", 5.0)
    assert parse_servers(None) == parse_servers("  ") == ()


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"a.b": {"command": "x"}}, "a server name has only letters"),
        ({"s": {"command": "x", "url": "http://h/mcp"}}, "either command (stdio) or url"),
        ({"s": {}}, "either command (stdio) or url"),
        ({"s": {"command": "x", "secret": 1}}, "unknown keys ['secret']"),
        ({"s": {"command": "x", "timeout_s": 0}}, "timeout_s must be a positive number"),
        ({"s": {"command": "x", "trusted": "yes"}}, "trusted must be true or false"),
        ({"s": {"url": "ftp://h"}}, "url must start with http:// or https://"),
        ({"s": {"command": "x", "args": "--flag"}}, "args must be a list of strings"),
    ],
)
def test_a_bad_server_entry_is_refused_with_what_to_fix(config: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_servers(json.dumps({"mcpServers": config}))
    assert says in str(refused.value)


def test_secret_headers_are_read_at_connect_time_and_never_shown(tmp_path: Path) -> None:
    token_file = tmp_path / "key"
    token_file.write_text("file-secret\n")
    [server] = parse_servers(
        servers(
            docs={
                "url": "https://user:pw@docs.example:8443/mcp?token=abc",
                "headers": {"X-Team": "ops"},
                "bearer_token_env": "DOCS_TOKEN",
                "headers_file": {"X-Api-Key": str(token_file)},
            }
        )
    )
    assert "env-secret" not in repr(server)
    headers, secrets = resolve_headers(server, {"DOCS_TOKEN": "env-secret"})
    assert headers == {
        "X-Team": "ops",
        "Authorization": "Bearer env-secret",
        "X-Api-Key": "file-secret",
    }
    assert sorted(secrets) == ["env-secret", "file-secret"]
    # What people see of the URL keeps neither the password nor the query.
    assert server.describe() == "https://docs.example:8443/mcp"
    with pytest.raises(ConfigurationError) as missing:
        resolve_headers(server, {})
    assert "environment variable DOCS_TOKEN, which is not set" in str(missing.value)


# -- listings and results ------------------------------------------------------------------


def test_a_listing_becomes_namespaced_specs_and_unusable_tools_are_left_out() -> None:
    [server] = parse_servers(servers(time={"command": "t", "timeout_s": 7, "trusted": True}))
    listing = specs_of(
        server,
        [
            Tool(name="get_current_time", description="now", input_schema=TZ_SCHEMA),
            Tool(name="bad name", input_schema={"type": "object"}),
            Tool(name="array_args", input_schema={"type": "array"}),
            Tool(name="broken_schema", input_schema={"type": "object", "required": 5}),
        ],
    )
    [spec] = listing.specs.values()
    assert (spec.name, spec.origin, spec.trusted, spec.default_timeout_s) == (
        "time.get_current_time",
        "mcp:time",
        True,
        7.0,
    )
    assert spec.json_schema() == TZ_SCHEMA
    assert [s.split(":")[0] for s in listing.skipped] == [
        "'bad name'",
        "'array_args'",
        "'broken_schema'",
    ]


def test_arguments_of_an_mcp_tool_are_checked_against_its_json_schema() -> None:
    assert argument_problems(NOW_TOOL, {"timezone": "UTC"}) == []
    assert argument_problems(NOW_TOOL, {}) == [("", "'timezone' is a required property")]
    assert argument_problems(NOW_TOOL, {"timezone": 5}) == [
        ("timezone", "5 is not of type 'string'")
    ]


def test_a_result_gives_its_text_and_structured_content_and_a_tool_error_fails() -> None:
    text = TextContent(type="text", text='{"n": 1}')
    assert result_of("s", "t", CallToolResult(content=[text], structured_content={"n": 1})) == (
        '{"n": 1}',
        {"n": 1},
    )
    # Structured content alone: the text is its JSON, so later steps can read it.
    assert (
        result_of("s", "t", CallToolResult(content=[], structured_content={"b": 2, "a": 1}))[0]
        == '{"a": 1, "b": 2}'
    )
    image = ImageContent(type="image", data="AAAA", mime_type="image/png")
    assert result_of("s", "t", CallToolResult(content=[image]))[0] == "[image image/png, 3 bytes]"
    with pytest.raises(ToolError) as failed:
        result_of(
            "s", "t", CallToolResult(content=[TextContent(type="text", text="no")], is_error=True)
        )
    assert str(failed.value) == "MCP tool s.t reported an error: no"
    assert not failed.value.transient


def test_structured_content_over_the_cap_is_dropped_and_said() -> None:
    capped = cap_result(ToolResult("short", {"blob": "x" * 500}), 200)
    assert capped.structured is None
    assert "[structured content dropped: 512 bytes, over the 200 byte cap]" in capped.text
    assert cap_result(ToolResult("ok", {"n": 1}), 200) == ToolResult("ok", {"n": 1})


# -- grants ----------------------------------------------------------------------------------


def test_an_untrusted_tool_runs_only_when_granted() -> None:
    assert grant_refusal(BUILTIN_TOOLS["echo"], "echo", ()) is None
    assert grant_refusal(NOW_TOOL, "time.now", ("time.now",)) is None
    refusal = grant_refusal(NOW_TOOL, "time.now", ("echo",))
    assert refusal is not None
    assert "untrusted (mcp:time) and not granted to this task" in refusal


def _accept(command: dict[str, Any]) -> Any:
    parsed = parse_goal_command(
        json.dumps({"text": "t", **command}).encode(), fallback_command_id="c", max_bytes=10_000
    )
    [event] = accept_goal(parsed, None, tools=TOOLS, now=NOW, producer=PRODUCER)
    return event


def test_intake_asks_for_a_grant_and_gives_it_to_the_task() -> None:
    step = {"tool": "time.now", "args": {"timezone": "UTC"}}
    refused = _accept({"steps": [step]})
    assert 'grant it to the step with "allowed_tools": ["time.now"]' in refused.reason
    by_step = _accept({"steps": [{**step, "allowed_tools": ["time.now"]}]})
    assert [t.allowed_tools for t in by_step.steps] == [("time.now",)]
    by_goal = _accept(
        {"steps": [step, {"tool": "echo", "args": {"text": "x"}}], "allowed_tools": ["time.now"]}
    )
    assert [t.allowed_tools for t in by_goal.steps] == [("time.now",), ()]
    assert by_goal.allowed_tools == ("time.now",)
    unknown = _accept({"allowed_tools": ["time.later"]})
    assert "allowed_tools names unknown tool 'time.later'" in unknown.reason
    bad_args = _accept({"steps": [{**step, "args": {}, "allowed_tools": ["time.now"]}]})
    assert "argument (all): 'timezone' is a required property" in bad_args.reason


def test_the_model_sees_and_plans_only_trusted_and_granted_tools() -> None:
    assert "time.now" not in visible_tools(TOOLS, ())
    assert "time.now" in visible_tools(TOOLS, ("time.now",))
    plan = json.dumps(
        {
            "tasks": [
                {"id": "a", "tool": "time.now", "args": {"timezone": "UTC"}, "description": "d"}
            ]
        }
    )
    [task] = parse_plan(plan, visible_tools(TOOLS, ("time.now",)), granted=("time.now",))
    assert task.allowed_tools == ("time.now",)  # type: ignore[union-attr]
    problems = parse_plan(plan, visible_tools(TOOLS, ()))
    assert isinstance(problems, list)
    assert "unknown tool 'time.now'" in problems[0]


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ToolContext]:
    async with httpx.AsyncClient() as http:
        yield ToolContext(workspace=tmp_path, http=http)


async def test_the_executor_refuses_an_ungranted_untrusted_tool_without_calling_it(
    ctx: ToolContext,
) -> None:
    calls: list[Any] = []

    async def now(args: Any, _ctx: ToolContext) -> str:
        calls.append(args)
        return "12:00"

    registry = ToolRegistry.builtin()
    registry.replace_origin("mcp:time", [RegisteredTool(NOW_TOOL, now)])
    stream = Stream()
    await deliver(
        scheduled("time.now", {"timezone": "UTC"}),
        stream,
        ToolRunner(registry, ctx),
        redelivered=False,
    )
    assert calls == []
    assert not [e for e in stream.events if isinstance(e, ToolCalled)]
    [failed] = [e for e in stream.events if isinstance(e, TaskFailed)]
    assert "not granted to this task" in failed.error
    assert (failed.transient, failed.attempts) == (False, 0)


async def test_a_tool_its_server_stopped_listing_is_refused_with_the_reason(
    ctx: ToolContext,
) -> None:
    async def echo(args: EchoArgs, _ctx: ToolContext) -> str:
        return args.text

    registry = ToolRegistry.builtin()
    registry.replace_origin("mcp:time", [RegisteredTool(NOW_TOOL, echo)])
    live = registry.specs()
    assert "time.now" in live
    registry.replace_origin("mcp:time", [])
    assert "time.now" not in live  # the view follows the registry
    runner = ToolRunner(registry, ctx)
    with pytest.raises(ToolError) as gone:
        await runner.call("time.now", {"timezone": "UTC"}, 1.0)
    assert "no longer offered: mcp:time changed its tool set" in str(gone.value)


# -- the recorded catalogue ------------------------------------------------------------------


def _listed(server: str, *names: str, problem: str | None = None) -> ToolsListed:
    return ToolsListed(
        event_id=f"l-{server}-{len(names)}",
        goal_id=f"_mcp_{server}",
        occurred_at=NOW,
        causation_id=None,
        correlation_id=f"_mcp_{server}",
        producer="executor@test",
        server=server,
        origin=f"mcp:{server}",
        transport="stdio",
        where="x",
        tools=tuple(ListedTool(name=name, input_schema=TZ_SCHEMA) for name in names),
        problem=problem,
    )


def test_the_catalogue_is_every_servers_latest_listing_beside_the_builtins() -> None:
    catalogue = with_listed(
        [
            _listed("time", "time.now", "time.later"),
            _listed("docs", "docs.get"),
            _listed("time", "time.now"),
        ]
    )
    assert set(catalogue) - set(BUILTIN_TOOLS) == {"time.now", "docs.get"}
    assert catalogue["time.now"].origin == "mcp:time"
    assert not catalogue["time.now"].trusted
    # A listing can never replace a built-in tool.
    assert with_listed([_listed("x", "echo")])["echo"] is BUILTIN_TOOLS["echo"]


def test_a_listing_is_recorded_once_per_content_and_again_when_it_changes_back() -> None:
    [server] = parse_servers(servers(time={"command": "t"}))
    connection = McpConnection(server)
    connection.listing = Listing({"time.now": NOW_TOOL})
    first = listing_event(connection, previous_id=None, producer="e", now=NOW)
    replica = listing_event(connection, previous_id=None, producer="e2", now=NOW)
    assert first.event_id == replica.event_id
    assert first.goal_id == "_mcp_time"
    assert [t.name for t in first.tools] == ["time.now"]
    connection.listing = Listing({})
    emptied = listing_event(connection, previous_id=first.event_id, producer="e", now=NOW)
    connection.listing = Listing({"time.now": NOW_TOOL})
    back = listing_event(connection, previous_id=emptied.event_id, producer="e", now=NOW)
    assert len({first.event_id, emptied.event_id, back.event_id}) == 3


# -- tool names on the wire ------------------------------------------------------------------


def test_tool_names_are_made_acceptable_to_providers_and_mapped_back() -> None:
    request = LlmRequest(
        purpose="react",
        messages=(
            ChatMessage(role="user", content="go"),
            ChatMessage(
                role="assistant", tool_calls=(ToolCall(id="1", name="time.now", arguments={}),)
            ),
        ),
        tools=(
            ToolDefinition(name="time.now", description="", parameters={}),
            ToolDefinition(name="time_now", description="", parameters={}),
            ToolDefinition(name="echo", description="", parameters={}),
        ),
    )
    names = WireNames.of(request)
    wired = names.request(request)
    assert [t.name for t in wired.tools] == ["time_now_2", "time_now", "echo"]
    assert wired.messages[1].tool_calls[0].name == "time_now_2"
    reply = LlmReply(
        provider="p", model="m", tool_calls=(ToolCall(id="2", name="time_now_2", arguments={}),)
    )
    assert names.reply(reply).tool_calls[0].name == "time.now"
    plain = LlmRequest(purpose="p", messages=(), tools=(wired.tools[2],))
    assert WireNames.of(plain).request(plain) is plain


def test_a_step_on_the_command_line_may_name_an_mcp_tool() -> None:
    from infra.cli.goal import parse_step

    assert parse_step('now=time.get_current_time:{"timezone": "UTC"}') == {
        "tool": "time.get_current_time",
        "args": {"timezone": "UTC"},
        "id": "now",
    }


def test_the_rule_planner_maps_a_step_naming_a_usable_mcp_tool_to_it() -> None:
    from services.planner.decompose import decompose_text

    text = 'use time.now with {"timezone": "Europe/Oslo"}, then summarize'
    now, summary = decompose_text(text, visible_tools(TOOLS, ("time.now",)))
    assert (now.tool, now.args, now.allowed_tools) == (
        "time.now",
        {"timezone": "Europe/Oslo"},
        ("time.now",),
    )
    assert summary.args == {"text": "Summary: {{steps.s1.output}}"}
    # Not granted (so not usable), or arguments that are no JSON object: the step is text.
    assert decompose_text(text, visible_tools(TOOLS, ()))[0].tool == "echo"
    assert decompose_text("time.now {not json}", TOOLS)[0].tool == "echo"


def test_a_planner_keeps_each_servers_latest_listing_by_stream_sequence() -> None:
    from infra.mcp.catalogue import ListedTools

    catalogue = ListedTools()
    catalogue.apply(5, _listed("time", "time.now", "time.later"))
    assert {"time.now", "time.later"} <= set(catalogue)
    catalogue.apply(3, _listed("time"))  # an older listing, read late: ignored
    assert "time.later" in catalogue
    catalogue.apply(9, _listed("time", "time.now"))
    assert "time.later" not in catalogue
    assert catalogue["time.now"].origin == "mcp:time"
    assert catalogue["echo"] is BUILTIN_TOOLS["echo"]


def test_tokens_are_scrubbed_from_the_sdks_standard_library_logs() -> None:
    import logging

    from infra.logging import redact_stdlib_loggers, register_secret

    register_secret("tok-very-secret-123")
    logging.getLogger("mcp.client.streamable_http")  # the SDK's module logger exists by now
    redact_stdlib_loggers("mcp")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("mcp.client.streamable_http")
    keep = Keep()
    logger.addHandler(keep)
    try:
        logger.warning("POST with Authorization: Bearer %s", "tok-very-secret-123")
    finally:
        logger.removeHandler(keep)
    assert seen == ["POST with Authorization: Bearer [redacted]"]
