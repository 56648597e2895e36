"""Which tools exist, what arguments they take, and the code that runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from events.errors import ToolError
from events.tools import BUILTIN_TOOLS, ToolSpec, argument_problems
from services.executor.destinations import BUILTIN_DESTINATIONS, DestinationOf, local
from services.executor.tools import (
    append_line,
    calculator,
    echo,
    http_get,
    python,
    read_file,
    sleep,
    wait_until,
    write_file,
)
from services.executor.tools.context import ToolContext, ToolImplementation, ToolResult

__all__ = ["RegisteredTool", "ToolRegistry", "describe_validation_error", "validated_args"]

ArgsT = TypeVar("ArgsT", bound=BaseModel)

_BUILTIN_IMPLEMENTATIONS: dict[str, ToolImplementation] = {
    "calculator": calculator.run,
    "echo": echo.run,
    "sleep": sleep.run,
    "wait_until": wait_until.run,
    "http_get": http_get.run,
    "read_file": read_file.run,
    "write_file": write_file.run,
    "python": python.run,
    "append_line": append_line.run,
}


@dataclass(frozen=True, slots=True)
class RegisteredTool:
    spec: ToolSpec
    run: ToolImplementation
    destination: DestinationOf = local

    @property
    def instant(self) -> bool:
        """The implementation never waits (``ToolSpec.instant``): it runs to its end in one
        step of the event loop, so neither a timeout nor a cancellation could interrupt it; it
        is called directly."""
        return self.spec.instant


class ToolRegistry:
    """Tool name -> (spec, implementation). The planner validates plans against ``specs()``."""

    def __init__(self, tools: Iterable[RegisteredTool] = ()) -> None:
        self._tools: dict[str, RegisteredTool] = {}
        # Tools an origin listed once and no longer does: name -> that origin.
        self._retired: dict[str, str] = {}
        for tool in tools:
            self._add(tool)

    @classmethod
    def builtin(cls) -> ToolRegistry:
        registry = cls()
        for name, spec in BUILTIN_TOOLS.items():
            destination = BUILTIN_DESTINATIONS.get(name, local)
            implementation = _BUILTIN_IMPLEMENTATIONS[name]
            registry._add(RegisteredTool(spec, implementation, destination))
        return registry

    def register(
        self,
        spec: ToolSpec,
        implementation: Callable[[ArgsT, ToolContext], Awaitable[str | ToolResult]],
        *,
        destination: Callable[[ArgsT], str | None] | None = None,
    ) -> None:
        """Add a tool. The implementation receives an instance of ``spec.args``.

        ``destination`` names the dependency a call reaches (calls to one destination share a
        circuit breaker); by default the whole tool is one destination.
        """
        name = spec.name
        self._add(RegisteredTool(spec, implementation, destination or (lambda _args: name)))

    def replace_origin(self, origin: str, tools: Iterable[RegisteredTool]) -> None:
        """Make ``tools`` the registry's whole set from ``origin`` (an MCP server's listing):
        tools it no longer lists are gone, new ones are added, changed ones replaced."""
        for name in [name for name, tool in self._tools.items() if tool.spec.origin == origin]:
            del self._tools[name]
            self._retired[name] = origin
        for tool in tools:
            if tool.spec.origin != origin:
                raise ValueError(f"tool {tool.spec.name!r} is not from {origin}")
            self._add(tool)
            self._retired.pop(tool.spec.name, None)

    def specs(self) -> Mapping[str, ToolSpec]:
        """A live, read-only view: it follows MCP servers' listings as they change."""
        return _Specs(MappingProxyType(self._tools))

    def find(self, name: str) -> RegisteredTool | None:
        """The tool called ``name``, or None."""
        return self._tools.get(name)

    def get(self, name: str) -> RegisteredTool:
        tool = self._tools.get(name)
        if tool is None and name in self._retired:
            raise ToolError(
                f"tool {name!r} is no longer offered: {self._retired[name]} changed its tool "
                "set and does not list it any more"
            )
        if tool is None:
            available = ", ".join(sorted(self._tools)) or "none"
            raise ToolError(f"unknown tool {name!r}; available tools: {available}")
        return tool

    def validate(self, name: str, raw_args: Any) -> Any:
        """The tool's argument model built from ``raw_args`` (for a tool described by a JSON
        Schema: the checked arguments), or a non-transient ``ToolError``."""
        return validated_args(self.get(name).spec, raw_args)

    def _add(self, tool: RegisteredTool) -> None:
        if tool.spec.name in self._tools:
            raise ValueError(f"tool {tool.spec.name!r} is registered twice")
        self._tools[tool.spec.name] = tool


def validated_args(spec: ToolSpec, raw_args: Any) -> Any:
    """``raw_args`` checked against ``spec``: its argument model, for a tool described by a
    JSON Schema the checked arguments; a non-transient ``ToolError`` when they do not fit."""
    name = spec.name
    if spec.args is None:
        problems = argument_problems(spec, raw_args)
        if problems:
            described = "; ".join(f"{where or 'arguments'}: {what}" for where, what in problems)
            raise ToolError(f"invalid arguments for tool {name!r}: {described}")
        return dict(raw_args)
    try:
        return spec.args.model_validate(raw_args)
    except ValidationError as exc:
        raise ToolError(
            f"invalid arguments for tool {name!r}: {describe_validation_error(exc)}"
        ) from exc


class _Specs(Mapping[str, ToolSpec]):
    def __init__(self, tools: Mapping[str, RegisteredTool]) -> None:
        self._tools = tools

    def __getitem__(self, name: str) -> ToolSpec:
        return self._tools[name].spec

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, e.g. ``expression: Field required``."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)
