"""Fault scenarios print their checker's verdict at the end of the run (``make faults``)."""

from __future__ import annotations

import pytest

VERDICTS: list[str] = []


def report(line: str) -> None:
    """Record a scenario's verdict (or measurement) for the summary printed after the run."""
    VERDICTS.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if VERDICTS:
        terminalreporter.section("fault scenarios: checker verdicts")
        for line in VERDICTS:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Full-scale scenarios run for minutes on a busy 2-core machine, past the suite's 120 s.
    for item in items:
        if item.get_closest_marker("faults") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(900))
