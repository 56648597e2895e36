"""The table that lets a command line load only its command's module matches what the
modules register."""

from __future__ import annotations

import importlib

from infra.cli import COMMANDS, MODULES
from infra.cli.common import app


def _registered() -> dict[str, str]:
    for module in MODULES:
        importlib.import_module(f"infra.cli.{module}")
    names = {
        (command.name or command.callback.__name__.replace("_", "-")): command.callback.__module__
        for command in app.registered_commands
        if command.callback is not None
    }
    for group in app.registered_groups:
        first = group.typer_instance.registered_commands[0].callback
        assert group.name is not None
        assert first is not None
        names[group.name] = first.__module__
    return {name: module.removeprefix("infra.cli.") for name, module in names.items()}


def test_every_command_is_in_the_table_with_its_module() -> None:
    assert _registered() == COMMANDS
