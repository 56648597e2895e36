"""The README and docs say only what is true of the code."""

from __future__ import annotations

import re
from pathlib import Path

from events.tools import BUILTIN_TOOLS

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_built_in_tools_are_listed_once_and_all_of_them() -> None:
    readme = ROOT / "README.md"
    sentences = re.findall(r"Built-in tools[^:]*:(.*?)\.", readme.read_text(), re.DOTALL)
    assert len(sentences) == 1
    assert set(re.findall(r"`(\w+)`", sentences[0])) == set(BUILTIN_TOOLS)


def test_user_docs_speak_of_the_product_not_of_its_making() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert not re.search(r"\bissues? \d", text), doc
        assert "shared/ARCHITECTURE" not in text, doc


def test_every_relative_link_leads_to_a_file() -> None:
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links {target}"
