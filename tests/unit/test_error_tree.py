"""One error tree rooted in AgoraError, and docs/errors.md names every class in it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

from events.errors import AgoraError

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
# Control flow and an internal signal, not errors (docs/errors.md says why).
NOT_ERRORS = {"Interrupted", "ClosedPipe", "AttemptError"}


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for package in ("events", "services", "projections", "infra", "agora"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            found += [
                cls
                for _, cls in inspect.getmembers(module, inspect.isclass)
                if issubclass(cls, BaseException) and cls.__module__ == module.__name__
            ]
    return found


def test_every_public_error_is_rooted_in_agora_error_and_documented() -> None:
    classes = [c for c in _exception_classes() if not c.__name__.startswith("_")]
    assert len(classes) > 20
    doc = DOC.read_text()
    for cls in classes:
        if cls.__name__ in NOT_ERRORS:
            assert f"`{cls.__name__}`" in doc, cls
            continue
        assert issubclass(cls, AgoraError), f"{cls.__module__}.{cls.__name__} is not an AgoraError"
        assert f"`{cls.__name__}`" in doc, f"docs/errors.md does not list {cls.__name__}"
        in_tree = cls is AgoraError or f"── {cls.__name__} " in doc
        assert in_tree, f"the tree in docs/errors.md has no {cls.__name__}"
