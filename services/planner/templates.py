"""The planner's prompt templates: versioned files, loaded once, rendered without ``str.format``.

A template is a file ``services/planner/prompts/<name>.v<N>.md``; the highest ``N`` of each name
is used. ``$placeholders`` are filled with :class:`string.Template`, so braces in a prompt
(JSON examples, ``{{steps.<id>.output}}``) stay literal. A rendered system prompt starts with
``[prompt planner/<name>.v<N>]``: the template's name and version are part of every request, so
changing a prompt changes the request hash, and a rerun reports the difference.

``AGORA_PLANNER_PROMPTS`` may name a directory of templates that take precedence over the
packaged ones (name by name), to try a prompt change against recorded goals with
``agora rerun`` before shipping it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from events.errors import ConfigurationError

__all__ = ["PromptTemplate", "PromptTemplates", "load_prompts"]

_FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9_-]*)\.v(?P<version>\d+)\.md$")
REQUIRED = ("plan", "revise", "goal", "revision", "fix")


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    version: int
    text: str

    @property
    def label(self) -> str:
        return f"planner/{self.name}.v{self.version}"

    def render(self, **values: str) -> str:
        try:
            return Template(self.text).substitute(values).strip()
        except (KeyError, ValueError) as exc:
            raise ConfigurationError(
                f"prompt template {self.label} has a placeholder agora does not fill: {exc}; "
                f"available: {', '.join('$' + key for key in sorted(values))}"
            ) from None

    def render_system(self, **values: str) -> str:
        """The rendered text, headed by the template's name and version."""
        return f"[prompt {self.label}]\n{self.render(**values)}"


@dataclass(frozen=True, slots=True)
class PromptTemplates:
    by_name: Mapping[str, PromptTemplate]

    def __getitem__(self, name: str) -> PromptTemplate:
        return self.by_name[name]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted(template.label for template in self.by_name.values()))


def _newest(files: Iterable[tuple[str, str]]) -> dict[str, PromptTemplate]:
    newest: dict[str, PromptTemplate] = {}
    for file_name, text in files:
        match = _FILE_NAME.match(file_name)
        if match is None:
            continue
        template = PromptTemplate(match["name"], int(match["version"]), text)
        current = newest.get(template.name)
        if current is None or template.version > current.version:
            newest[template.name] = template
    return newest


def _packaged() -> dict[str, PromptTemplate]:
    folder = resources.files("services.planner") / "prompts"
    return _newest(
        (item.name, item.read_text(encoding="utf-8")) for item in folder.iterdir() if item.is_file()
    )


def load_prompts(override_dir: Path | None = None) -> PromptTemplates:
    """The packaged templates, each replaced by ``override_dir``'s template of the same name."""
    templates = _packaged()
    if override_dir is not None:
        if not override_dir.is_dir():
            raise ConfigurationError(
                f"AGORA_PLANNER_PROMPTS={override_dir} is not a directory of prompt templates"
            )
        templates.update(
            _newest(
                (path.name, path.read_text(encoding="utf-8"))
                for path in sorted(override_dir.iterdir())
                if path.is_file()
            )
        )
    missing = [name for name in REQUIRED if name not in templates]
    if missing:
        raise ConfigurationError(f"planner prompt templates missing: {', '.join(missing)}")
    return PromptTemplates(templates)
