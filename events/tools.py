"""The built-in tools' argument schemas: part of the intake contract.

Arguments are pydantic models so every tool has a JSON Schema (``agora schema``) and a
readable validation error. Implementations live in ``services/executor/tools``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BUILTIN_TOOLS",
    "REACT_TOOL",
    "AppendLineArgs",
    "CalculatorArgs",
    "EchoArgs",
    "HttpGetArgs",
    "PythonArgs",
    "ReactArgs",
    "ReadFileArgs",
    "SleepArgs",
    "ToolSpec",
    "WriteFileArgs",
]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalculatorArgs(_Args):
    expression: str = Field(min_length=1, max_length=1000, description="arithmetic, e.g. 17*23")


class EchoArgs(_Args):
    text: str = Field(max_length=100_000)


class SleepArgs(_Args):
    seconds: float = Field(ge=0, le=3600)


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


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    args: type[BaseModel]
    # A tool with side effects is never re-run blindly after a crash: see the executor.
    side_effects: bool = False
    default_timeout_s: float = 30.0


BUILTIN_TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec("calculator", "evaluate an arithmetic expression", CalculatorArgs),
        ToolSpec("echo", "return the given text", EchoArgs),
        ToolSpec("sleep", "wait for a number of seconds", SleepArgs, default_timeout_s=3600),
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
