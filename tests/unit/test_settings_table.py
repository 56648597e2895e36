"""docs/operations.md's settings table is the one `agora settings` renders from the
declarations, and every variable agora's code names is declared."""

from __future__ import annotations

import re
from pathlib import Path

from infra.cli.settings import BEGIN, END, settings_table, with_table
from infra.environment import variables

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"
# Names under the prefix that are not variables: streams, buckets, an account, a name prefix.
NOT_VARIABLES = {
    "AGORA_CLIENTS",
    "AGORA_DLQ",
    "AGORA_EVENTS",
    "AGORA_INTAKE",
    "AGORA_MEMORY_SNAPSHOTS",
    "AGORA_OUTPUTS",
}


def test_the_documented_table_is_the_generated_one() -> None:
    document = OPERATIONS.read_text(encoding="utf-8")
    assert with_table(document) == document, (
        "docs/operations.md's settings table is stale: run "
        "`agora settings --write docs/operations.md`"
    )
    assert document.index(BEGIN) < document.index(settings_table()) < document.index(END)


def test_every_variable_the_code_names_is_declared() -> None:
    declared = {name for name, _ in variables()}
    named: set[str] = set()
    for package in ("agora", "events", "services", "projections", "infra"):
        for source in (ROOT / package).rglob("*.py"):
            named |= set(re.findall(r"\bAGORA_[A-Z0-9_]*[A-Z0-9]\b", source.read_text()))
    assert named - declared - NOT_VARIABLES == set()
