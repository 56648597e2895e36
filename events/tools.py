"""The tools' argument schemas: the built-in ones are part of the intake contract.

Built-in arguments are pydantic models so every tool has a JSON Schema (``agora schema``) and
a readable validation error. Tools from MCP servers bring a JSON Schema of their own, checked
with ``jsonschema`` (see ``argument_problems``). Implementations live in
``services/executor/tools`` and, for MCP tools, ``infra/mcp``.
"""

from __future__ import annotations

import enum
import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from events.instants import parse_instant

__all__ = [
    "BUILTIN_ORIGIN",
    "BUILTIN_TOOLS",
    "REACT_TOOL",
    "AppendLineArgs",
    "CalculatorArgs",
    "CallRecord",
    "EchoArgs",
    "HttpGetArgs",
    "PythonArgs",
    "ReactArgs",
    "ReadFileArgs",
    "SleepArgs",
    "ToolSpec",
    "WaitUntilArgs",
    "WriteFileArgs",
    "argument_problems",
    "external_tool",
    "schema_problem",
]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalculatorArgs(_Args):
    expression: str = Field(min_length=1, max_length=1000, description="arithmetic, e.g. 17*23")


class EchoArgs(_Args):
    text: str = Field(max_length=100_000)


class SleepArgs(_Args):
    seconds: float = Field(ge=0, le=3600)


class WaitUntilArgs(_Args):
    at: str = Field(
        min_length=1,
        max_length=64,
        description="an RFC 3339 time with a zone, e.g. 2026-12-24T18:00:00Z",
        json_schema_extra={"format": "date-time"},
    )

    @field_validator("at")
    @classmethod
    def _names_a_moment(cls, value: str) -> str:
        try:
            parse_instant(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} {exc}") from None
        return value

    @property
    def moment(self) -> datetime:
        """The time to wait for, in UTC."""
        return parse_instant(self.at)


class HttpGetArgs(_Args):
    url: str = Field(pattern=r"^https?://", max_length=4096)


class ReadFileArgs(_Args):
    path: str = Field(min_length=1, max_length=1024, description="relative to the workspace")


class WriteFileArgs(_Args):
    path: str = Field(min_length=1, max_length=1024, description="relative to the workspace")
    content: str = Field(max_length=1_000_000)


class PythonArgs(_Args):
    code: str = Field(min_length=1, max_length=100_000, description="a Python 3 program")
    stdin: str = Field(default="", max_length=1_000_000, description="its standard input")


class AppendLineArgs(_Args):
    path: str = Field(min_length=1, max_length=1024, description="relative to the workspace")
    line: str = Field(max_length=100_000, pattern=r"^[^\n]*$", description="one line, no newline")


BUILTIN_ORIGIN = "builtin"


class CallRecord(enum.Enum):
    """When the executor stores an attempt's ``tool_called``.

    ``BEFORE_RUN``: stored (acknowledged) before the tool runs, so that a crash between running
    a tool that acts on the world and recording its outcome never runs it again unseen.
    ``WHILE_RUNNING``: the tool starts at once; only if it is still running after a short grace
    is ``tool_called`` stored, while it runs (for the views and as the attempt's claim), and a
    refused claim stops the call and drops its result. One that ends within the grace is
    recorded by its outcome alone. For tools without side effects that take time: running one
    again is harmless, so nothing need be stored before it runs.
    ``BY_OUTCOME``: never; the outcome (``task_completed`` or ``tool_failed``, ``called_at``
    set) is the call's whole record. For instant tools without side effects.
    """

    BEFORE_RUN = "before_run"
    WHILE_RUNNING = "while_running"
    BY_OUTCOME = "by_outcome"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as planners and the executor know it.

    A built-in tool's arguments are the pydantic model ``args``. A tool from elsewhere (an MCP
    server) has ``args`` None and its JSON Schema as canonical JSON text in ``input_schema``
    (text, so that a spec stays hashable and comparable). ``origin`` says where it comes from
    (``builtin``, ``mcp:<server>``); an untrusted tool runs only for a task that was granted it
    (``allowed_tools``).

    ``side_effects`` and ``instant`` decide how the executor records a call
    (``call_record``).
    """

    name: str
    description: str
    args: type[BaseModel] | None = None
    # A tool with side effects is never re-run blindly after a crash: see the executor.
    side_effects: bool = False
    default_timeout_s: float = 30.0
    input_schema: str | None = None
    origin: str = BUILTIN_ORIGIN
    trusted: bool = True
    # Computes its result at once, waiting on nothing (no I/O, no sleep): the executor calls it
    # directly, with no timeout timer and no cancellation watch.
    instant: bool = False

    @property
    def call_record(self) -> CallRecord:
        """How each attempt of this tool is recorded (``CallRecord``): a tool with side effects
        before it runs; an instant one without by its outcome alone; any other while it runs."""
        if self.side_effects:
            return CallRecord.BEFORE_RUN
        return CallRecord.BY_OUTCOME if self.instant else CallRecord.WHILE_RUNNING

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the tool's arguments."""
        if self.args is not None:
            return _model_schema(self.args)
        assert self.input_schema is not None, f"tool {self.name} has no argument schema"
        schema = json.loads(self.input_schema)
        assert isinstance(schema, dict)
        return schema

    def argument_names(self) -> tuple[str, ...]:
        properties = self.json_schema().get("properties")
        return tuple(properties) if isinstance(properties, dict) else ()

    def required_arguments(self) -> tuple[str, ...]:
        required = self.json_schema().get("required")
        return tuple(str(name) for name in required) if isinstance(required, list) else ()


@functools.cache
def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    # Built once per model: pydantic's schema generation costs milliseconds per tool.
    return model.model_json_schema()


def external_tool(
    name: str,
    description: str,
    input_schema: dict[str, Any],
    *,
    origin: str,
    trusted: bool = False,
    default_timeout_s: float = 30.0,
) -> ToolSpec:
    """A tool whose arguments are described by a JSON Schema (check it with
    ``schema_problem`` first). External tools may act on the world: ``side_effects``."""
    return ToolSpec(
        name,
        description,
        None,
        side_effects=True,
        default_timeout_s=default_timeout_s,
        input_schema=json.dumps(input_schema, sort_keys=True, ensure_ascii=False),
        origin=origin,
        trusted=trusted,
    )


def schema_problem(schema: object) -> str | None:
    """Why ``schema`` cannot describe a tool's arguments, or None when it can."""
    if not isinstance(schema, dict):
        return f"the input schema is a {type(schema).__name__}, not a JSON object"
    if schema.get("type", "object") != "object":
        return f"the input schema's type is {schema.get('type')!r}; tool arguments are an object"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return f"the input schema is not a valid JSON Schema: {exc.message}"
    return None


@functools.lru_cache(maxsize=1024)
def _validator(input_schema: str) -> Any:
    schema = json.loads(input_schema)
    return jsonschema.validators.validator_for(schema)(schema)


def argument_problems(spec: ToolSpec, raw_args: Any) -> list[tuple[str, str]]:
    """Each problem with ``raw_args`` for ``spec``, as (where, what); empty when valid."""
    if spec.args is not None:
        try:
            spec.args.model_validate(raw_args)
        except ValidationError as exc:
            return [
                (".".join(str(part) for part in error["loc"]), error["msg"])
                for error in exc.errors(include_url=False)
            ]
        return []
    assert spec.input_schema is not None
    errors = sorted(_validator(spec.input_schema).iter_errors(raw_args), key=_error_order)
    return [
        (".".join(str(part) for part in error.absolute_path), error.message) for error in errors
    ]


def _error_order(error: jsonschema.ValidationError) -> tuple[str, ...]:
    return tuple(str(part) for part in error.absolute_path)


BUILTIN_TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec("calculator", "evaluate an arithmetic expression", CalculatorArgs, instant=True),
        ToolSpec("echo", "return the given text", EchoArgs, instant=True),
        ToolSpec("sleep", "wait for a number of seconds", SleepArgs, default_timeout_s=3600),
        ToolSpec(
            "wait_until",
            "wait until a point in time (RFC 3339 with a zone); at once if it has passed",
            WaitUntilArgs,
            default_timeout_s=3600,
        ),
        ToolSpec("http_get", "fetch a URL over HTTP(S)", HttpGetArgs),
        ToolSpec("read_file", "read a text file from the workspace", ReadFileArgs),
        ToolSpec(
            "write_file", "write a text file in the workspace", WriteFileArgs, side_effects=True
        ),
        ToolSpec(
            "python",
            "run a Python program in a sandbox (standard library, no network); returns stdout",
            PythonArgs,
        ),
        ToolSpec(
            "append_line",
            "append one line to a text file in the workspace",
            AppendLineArgs,
            side_effects=True,
        ),
    )
}


# An open-ended task: not a tool of the registry but a think -> call a tool -> observe loop in
# the executor, which may call only the task's ``allowed_tools`` (see services/executor/react.py).
REACT_TOOL = "react"


class ReactArgs(_Args):
    instruction: str = Field(
        min_length=1, max_length=20_000, description="what the open-ended task must achieve"
    )
