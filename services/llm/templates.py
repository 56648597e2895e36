"""Versioned prompt templates: ``services/<service>/prompts/<name>.v<N>.md``, package data.

A prompt is data, not code: it is read once by a composition root and handed to the pure
decisions. Rendering is ``string.Template`` substitution (``$name``), so braces in a prompt
(JSON examples) need no escaping. The rendered text starts with ``[prompt <service>/<name>.v<N>]``
so the template's identity is part of every request: a changed prompt changes the request
hash, and a rerun reports the difference instead of reusing an answer to another question.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib import resources

from events.errors import ConfigurationError

__all__ = ["PromptTemplate", "load_prompt"]


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    service: str
    name: str
    version: int
    text: str

    @property
    def ref(self) -> str:
        """``executor/react.v1``: how requests and docs name this template."""
        return f"{self.service}/{self.name}.v{self.version}"

    def render(self, **values: str) -> str:
        """The template with every ``$placeholder`` filled; a missing value is a bug here."""
        try:
            body = string.Template(self.text).substitute(values)
        except KeyError as exc:
            raise ConfigurationError(f"prompt {self.ref} needs a value for {exc}") from None
        return f"[prompt {self.ref}]\n{body.strip()}\n"


def load_prompt(service: str, name: str, version: int) -> PromptTemplate:
    """Read ``services/<service>/prompts/<name>.v<version>.md`` from the installed package."""
    resource = resources.files(f"services.{service}").joinpath("prompts", f"{name}.v{version}.md")
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"prompt template {service}/{name}.v{version} is missing from the installation "
            f"(expected services/{service}/prompts/{name}.v{version}.md)"
        ) from None
    return PromptTemplate(service=service, name=name, version=version, text=text)
