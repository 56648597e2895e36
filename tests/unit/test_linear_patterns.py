"""Every pattern in the services and the event model -> run on hostile text -> at once.

Goal text, tool outputs, model answers and client commands reach these patterns; one
super-linear match freezes the event loop of the service running it. The patterns are found by
walking the modules, so a new one is covered the day it is added.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from collections.abc import Iterator

import pytest

import events
import projections
import services

_LENGTH = 20_000
# Text shaped after what makes backtracking engines explode: long runs of one class, and runs
# of alternating classes that almost match.
_UNITS = [
    " ",
    "\t",
    "\n",
    "\u2003",
    "a",
    "1",
    ".",
    ",",
    "{",
    "x",
    "a ",
    " \n",
    "1 x",
    "{{ ",
    ", then",
]
HOSTILE = [unit * (_LENGTH // len(unit)) + "!" for unit in _UNITS] + [
    "a" + " " * _LENGTH + "b",
    "write " + "a " * (_LENGTH // 2) + "to",
    "{{steps." + "a" * _LENGTH,
    "```" + " " * _LENGTH,
]


def _patterns() -> Iterator[tuple[str, object]]:
    for package in (events, services, projections):
        for module_info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module_info.name.endswith(("sandbox_launcher", ".main")):
                continue  # entry points: they act when imported
            module = importlib.import_module(module_info.name)
            for name, value in vars(module).items():
                if isinstance(value, re.Pattern) or type(value).__module__.startswith("re2"):
                    yield f"{module_info.name}.{name}", value


PATTERNS = dict(_patterns())
# Patterns only ever matched at a known position (never searched), with why that is linear.
ANCHORED_ONLY = {
    "events.untrusted_json._SPACE": "the JSON scanner matches it where a token may start",
    "events.untrusted_json._STRING_REST": "matched after an opening quote: one pass to the close",
    "events.untrusted_json._NUMBER": "matched where a scalar starts",
}


def test_the_walk_finds_the_patterns_on_untrusted_text() -> None:
    assert "services.planner.decompose._INLINE_SEPARATOR" in PATTERNS
    assert "services.planner.references._REFERENCE" in PATTERNS
    assert set(ANCHORED_ONLY) <= set(PATTERNS)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_a_pattern_runs_in_linear_time_on_hostile_text(name: str) -> None:
    pattern = PATTERNS[name]
    started = time.process_time()

    for text in HOSTILE:
        pattern.match(text)  # type: ignore[attr-defined]
        if name not in ANCHORED_ONLY:
            pattern.search(text)  # type: ignore[attr-defined]

    assert time.process_time() - started < 1.0, f"{name} is super-linear on hostile text"
