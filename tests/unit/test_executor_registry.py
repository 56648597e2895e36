"""The tool registry: specs for the planner, readable validation errors for bad arguments."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

from events.errors import ToolError
from events.tools import BUILTIN_TOOLS, CalculatorArgs, EchoArgs, ToolSpec, WriteFileArgs
from services.executor.registry import ToolRegistry
from services.executor.tools.context import ToolContext


def test_builtin_registry_offers_every_builtin_tool() -> None:
    specs = ToolRegistry.builtin().specs()

    assert set(specs) == {
        "calculator",
        "echo",
        "sleep",
        "wait_until",
        "http_get",
        "read_file",
        "write_file",
        "python",
        "append_line",
    }
    assert specs == BUILTIN_TOOLS
    assert specs["write_file"].side_effects is True


def test_specs_cannot_be_changed_through_the_mapping() -> None:
    specs = ToolRegistry.builtin().specs()
    with pytest.raises(TypeError):
        specs["evil"] = specs["echo"]  # type: ignore[index]


def test_validate_builds_the_argument_model() -> None:
    args = ToolRegistry.builtin().validate("write_file", {"path": "a.txt", "content": "hi"})
    assert args == WriteFileArgs(path="a.txt", content="hi")


def test_unknown_tool_names_the_available_ones() -> None:
    with pytest.raises(
        ToolError, match=r"unknown tool 'shell'; available tools: append_line, calculator, "
    ) as e:
        ToolRegistry.builtin().validate("shell", {"cmd": "rm -rf /"})
    assert e.value.transient is False


@pytest.mark.parametrize(
    ("tool", "raw_args", "message"),
    [
        ("calculator", {}, "invalid arguments for tool 'calculator': expression: Field required"),
        ("calculator", {"expression": "1", "x": 2}, "x: Extra inputs are not permitted"),
        ("sleep", {"seconds": -1}, "seconds: Input should be greater than or equal to 0"),
        ("http_get", {"url": "ftp://example.com"}, "url: String should match pattern"),
        ("echo", ["not", "a", "dict"], "invalid arguments for tool 'echo'"),
    ],
)
def test_invalid_arguments_are_permanent_readable_errors(
    tool: str, raw_args: object, message: str
) -> None:
    with pytest.raises(ToolError) as caught:
        ToolRegistry.builtin().validate(tool, raw_args)
    assert message in str(caught.value)
    assert caught.value.transient is False


async def test_registered_tools_run_with_their_validated_arguments(tmp_path: Path) -> None:
    class ShoutArgs(BaseModel):
        text: str

    async def shout(args: ShoutArgs, _ctx: ToolContext) -> str:
        return args.text.upper()

    registry = ToolRegistry()
    registry.register(ToolSpec("shout", "upper-case the text", ShoutArgs), shout)
    args = registry.validate("shout", {"text": "hey"})

    async with httpx.AsyncClient() as http:
        assert await registry.get("shout").run(args, ToolContext(tmp_path, http)) == "HEY"
    assert list(registry.specs()) == ["shout"]


def test_a_tool_name_can_be_registered_once() -> None:
    async def noop(_args: EchoArgs, _ctx: ToolContext) -> str:
        return ""

    registry = ToolRegistry()
    registry.register(ToolSpec("noop", "nothing", EchoArgs), noop)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(ToolSpec("noop", "nothing", CalculatorArgs), noop)
