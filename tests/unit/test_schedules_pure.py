"""Schedules, pure: what a user writes becomes the server's pattern; a firing's command id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.schedules import (
    ScheduleError,
    firing_command_id,
    firing_of,
    parse_schedule,
    schedule_name,
    schedule_subject,
    server_version_problem,
)

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def test_a_five_field_cron_line_gets_a_seconds_field_and_keeps_its_time_zone() -> None:
    spec = parse_schedule(now=NOW, cron="0 9 * * MON-FRI", time_zone="Europe/Berlin")
    assert (spec.kind, spec.pattern, spec.time_zone) == (
        "cron",
        "0 0 9 * * MON-FRI",
        "Europe/Berlin",
    )
    headers = spec.headers()
    assert headers["Nats-Schedule"] == "0 0 9 * * MON-FRI"
    assert headers["Nats-Schedule-Target"] == "agora.intake.goal"
    assert headers["Nats-Schedule-Time-Zone"] == "Europe/Berlin"
    assert parse_schedule(now=NOW, cron="*/5 * * * * *").pattern == "*/5 * * * * *"
    assert parse_schedule(now=NOW, cron="@daily").pattern == "@daily"
    with pytest.raises(ScheduleError, match="has 3 fields"):
        parse_schedule(now=NOW, cron="0 9 *")


def test_an_interval_is_at_least_a_second() -> None:
    assert parse_schedule(now=NOW, every="10m").pattern == "@every 10m"
    with pytest.raises(ScheduleError, match="too short"):
        parse_schedule(now=NOW, every="500ms")
    with pytest.raises(ScheduleError, match="not a duration"):
        parse_schedule(now=NOW, every="ten minutes")


def test_a_one_shot_must_lie_in_the_future_and_name_its_zone() -> None:
    spec = parse_schedule(now=NOW, at="2026-12-24T19:00:00+01:00")
    assert spec.pattern == "@at 2026-12-24T18:00:00Z"
    assert spec.headers()["Agora-Schedule-At"] == "2026-12-24T18:00:00Z"
    with pytest.raises(ScheduleError, match="is in the past"):
        parse_schedule(now=NOW, at="2026-12-07T02:59:59Z")
    with pytest.raises(ScheduleError, match="is in the past"):
        parse_schedule(now=NOW, at="2026-12-07T03:00:00Z")
    with pytest.raises(ScheduleError, match="no time zone"):
        parse_schedule(now=NOW, at="2026-12-24T18:00:00")
    with pytest.raises(ScheduleError, match="not a time"):
        parse_schedule(now=NOW, at="christmas")


def test_exactly_one_kind_and_a_time_zone_only_with_cron() -> None:
    with pytest.raises(ScheduleError, match="exactly one"):
        parse_schedule(now=NOW)
    with pytest.raises(ScheduleError, match="exactly one"):
        parse_schedule(now=NOW, every="1s", cron="* * * * *")
    with pytest.raises(ScheduleError, match="--cron only"):
        parse_schedule(now=NOW, every="1s", time_zone="Europe/Berlin")


def test_an_older_server_is_refused_naming_the_version_needed() -> None:
    assert server_version_problem("at", (2, 12, 0)) is None
    assert server_version_problem("cron", (2, 15, 1)) is None
    problem = server_version_problem("every", (2, 12, 7))
    assert problem == (
        "interval (--every) schedules need nats-server 2.14.0 or newer; this server is 2.12.7"
    )
    assert "2.12.0 or newer" in (server_version_problem("at", (2, 11, 9)) or "")


def test_names_are_one_subject_token() -> None:
    assert schedule_subject("nightly-report") == "agora.intake.schedule.nightly-report"
    assert schedule_name("agora.intake.schedule.nightly-report") == "nightly-report"
    assert schedule_name("agora.intake.goal") is None
    for bad in ("two words", "a.b", "", "x" * 65):
        with pytest.raises(ScheduleError, match="not valid"):
            schedule_subject(bad)


def test_a_firing_is_named_by_its_schedule_and_the_time_the_server_stamped_on_it() -> None:
    scheduler = "agora.intake.schedule.standup"
    utc = firing_command_id(scheduler, "2026-12-08T08:00:00Z", None)
    assert utc == "schedule-standup-before-2026-12-08T08:00:00Z"
    # Cron in a time zone is stamped with its offset: the same instant, the same id.
    assert firing_command_id(scheduler, "2026-12-08T09:00:00+01:00", None) == utc
    assert firing_command_id(scheduler, "2026-12-08T08:00:01Z", None) != utc
    at = "2026-12-24T18:00:00Z"
    assert firing_command_id(scheduler, "purge", at) == f"schedule-standup-at-{at}"


def test_only_a_firing_of_an_agora_schedule_has_a_firing_id() -> None:
    assert firing_of({"Nats-Msg-Id": "c-1"}) is None
    assert firing_of({"Nats-Scheduler": "other.subject", "Nats-Schedule-Next": "purge"}) is None
    assert (
        firing_of({"Nats-Scheduler": "agora.intake.schedule.x", "Nats-Schedule-Next": "soon"})
        is None
    )
    headers = {
        "Nats-Scheduler": "agora.intake.schedule.x",
        "Nats-Schedule-Next": "2026-12-08T08:00:00Z",
    }
    assert firing_of(headers) == "schedule-x-before-2026-12-08T08:00:00Z"
