"""A unit of work's fields reach every line logged within it, and only within it."""

from __future__ import annotations

import json

import pytest
import structlog

from infra.logging import bind_lazy_fields, configure_logging, get_logger, unbind_lazy_fields


def test_lines_logged_during_a_delivery_carry_its_fields_and_explicit_keys_win(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", cache=False)
    try:
        _log_inside_and_outside(capsys)
    finally:
        structlog.reset_defaults()


def _log_inside_and_outside(capsys: pytest.CaptureFixture[str]) -> None:
    log = get_logger("test")
    computed: list[int] = []

    def fields() -> dict[str, object]:
        computed.append(1)
        return {"goal_id": "g-1", "stream_seq": 7}

    token = bind_lazy_fields(fields)
    log.debug("filtered_out")  # below the level: the fields are not even computed
    assert computed == []
    log.info("inside", stream_seq=9)
    unbind_lazy_fields(token)
    log.info("outside")

    inside, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert (inside["goal_id"], inside["stream_seq"]) == ("g-1", 9)
    assert "goal_id" not in outside
