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
