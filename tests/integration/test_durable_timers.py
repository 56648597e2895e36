"""Durable timers on the real nats-server: long sleeps, waits until a time and retry backoffs
hold no process and no ack, survive a restart of every service and of nats-server, and wake
each task exactly once."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nats.errors
from nats.aio.client import Client as NatsClient

from events.catalog import (
    GoalCancelled,
    GoalCompleted,
    GoalRejected,
    TaskCancelled,
    TaskCompleted,
    TimerFired,
    TimerStarted,
    ToolCalled,
    ToolFailed,
)
from events.subjects import EVENTS_STREAM, INTAKE_STREAM, INTAKE_WAKEUP
from events.timers import Wakeup
from infra.bus.timers import ScheduledTimers
from infra.clients.goals import AgoraClient
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings
from tests.conftest import InProcessPlatform
from tests.support import all_events, duplicates, wait_until

GOALS = 20
SLEEP_S = 4


def sleeper(n: int) -> dict[str, object]:
    return {
        "goal_id": f"g-timer-{n}",
        "text": "sleep, then say done",
        "steps": [
            {"tool": "sleep", "args": {"seconds": SLEEP_S}},
            {"tool": "echo", "args": {"text": f"done {n}"}},
        ],
    }


async def count(nc: NatsClient, subject: str) -> int:
    return len(await all_events(nc, subject))


async def restart_everything(platform: InProcessPlatform, nats_server: EmbeddedNats) -> None:
    """Everything stops mid-wait: the services, then nats-server (SIGKILL); then both start."""
    await platform.stop()
    assert nats_server.pid is not None
    os.kill(nats_server.pid, signal.SIGKILL)
    nats_server.stop()
    nats_server.start()
    platform.start()


async def counted(nc: NatsClient, subject: str, expected: int) -> bool:
    """Whether ``subject`` holds ``expected`` events; False while JetStream still recovers its
    streams after a restart."""
    try:
        return await count(nc, subject) == expected
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        return False


async def test_sleeping_goals_survive_a_restart_of_everything_and_wake_once(
    nats_server: EmbeddedNats, nc: NatsClient, client: AgoraClient, settings: Settings
) -> None:
    durable = replace(settings, timer_threshold_s=1.0)
    platform = InProcessPlatform(durable)
    platform.start()
    try:
        for n in range(GOALS):
            await client.submit(sleeper(n))

        async def all_waiting() -> bool:
            reply = await client.query("SELECT count(*) AS n FROM tasks WHERE status = 'waiting'")
            return await count(nc, "agora.events.*.timer_started") == GOALS and (
                reply.rows == [[GOALS]]
            )

        await wait_until(all_waiting, timeout_s=20, what="every goal waiting on its timer")
        # Nothing is held while they sleep: every task_scheduled is acked.
        info = await nc.jetstream().consumer_info(EVENTS_STREAM, "executor")
        assert info.num_ack_pending == 0

        await restart_everything(platform, nats_server)

        async def all_completed() -> bool:
            return await counted(nc, "agora.events.*.goal_completed", GOALS)

        await wait_until(all_completed, timeout_s=40, what="every sleeping goal completed")
        log = await all_events(nc)
        assert duplicates(log) == {}
        kinds = Counter((type(e).__name__, e.goal_id) for e in log)
        for n in range(GOALS):
            goal_id = f"g-timer-{n}"
            for kind in (TimerStarted, TimerFired, GoalCompleted):
                assert kinds[(kind.__name__, goal_id)] == 1, (kind.__name__, goal_id)
            assert kinds[("TaskCompleted", goal_id)] == 2
        started = {e.goal_id: e for e in log if isinstance(e, TimerStarted)}
        for done in (e for e in log if isinstance(e, TaskCompleted) and e.task_id == "s1"):
            timer = started[done.goal_id]
            assert done.output == f"slept {SLEEP_S}s"
            # Never woken early (the server fires on whole seconds, rounded up).
            assert done.occurred_at >= timer.due_at - timedelta(milliseconds=1)
            assert timer.due_at - timer.occurred_at == timedelta(seconds=SLEEP_S)

        # A wake-up sent again after the task finished changes nothing.
        timer = started["g-timer-0"]
        again = Wakeup(goal_id=timer.goal_id, timer_id=timer.timer_id)
        ack = await nc.jetstream().publish(INTAKE_WAKEUP, again.encode())

        async def handled() -> bool:
            info = await nc.jetstream().consumer_info(INTAKE_STREAM, "executor")
            return info.ack_floor.stream_seq >= ack.seq

        await wait_until(handled, timeout_s=10, what="the repeated wake-up handled")
        assert await all_events(nc, "agora.events.g-timer-0.>") == [
            e for e in log if e.goal_id == "g-timer-0"
        ]
    finally:
        await platform.stop()


async def test_a_cancel_ends_a_task_waiting_on_a_durable_timer_at_once(
    nc: NatsClient, client: AgoraClient, settings: Settings
) -> None:
    platform = InProcessPlatform(replace(settings, timer_threshold_s=1.0))
    platform.start()
    try:
        submitted = await client.submit(
            {
                "goal_id": "g-timer-cancel",
                "text": "sleep an hour",
                "steps": [{"tool": "sleep", "args": {"seconds": 3000}}],
            }
        )

        async def waiting() -> bool:
            return await count(nc, "agora.events.g-timer-cancel.timer_started") == 1

        await wait_until(waiting, timeout_s=10, what="the task waiting on its timer")
        sent = await client.cancel(submitted.goal_id, reason="not needed")
        assert isinstance(await client.answer(sent, timeout_s=5), GoalCancelled)

        async def stopped() -> bool:
            return await count(nc, "agora.events.g-timer-cancel.task_cancelled") == 1

        await wait_until(stopped, timeout_s=5, what="the waiting task cancelled")
        log = await all_events(nc, "agora.events.g-timer-cancel.>")
        ended = next(e for e in log if isinstance(e, TaskCancelled))
        assert (ended.task_id, ended.attempts) == ("s1", 1)
        assert not any(isinstance(e, TimerFired | TaskCompleted) for e in log)
    finally:
        await platform.stop()


async def test_wait_until_holds_nothing_survives_a_restart_and_refuses_a_malformed_time(
    nats_server: EmbeddedNats, nc: NatsClient, client: AgoraClient, settings: Settings
) -> None:
    platform = InProcessPlatform(replace(settings, timer_threshold_s=1.0))
    platform.start()
    try:
        # A time that has passed is reached at once, in process (and shows the platform runs,
        # so that the next goal's time is still ahead when the executor takes it).
        past = {"tool": "wait_until", "args": {"at": "2020-01-01T00:00:00+01:00"}}
        await client.submit({"goal_id": "g-until-past", "text": "late", "steps": [past]})
        bad = {"tool": "wait_until", "args": {"at": "2026-12-24 18:00"}}
        await client.submit({"goal_id": "g-until-bad", "text": "never", "steps": [bad]})

        async def reached() -> bool:
            return await count(nc, "agora.events.g-until-past.goal_completed") == 1

        await wait_until(reached, timeout_s=30, what="the wait for a past time completed")
        moment = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
        at = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        await client.submit(
            {
                "goal_id": "g-until",
                "text": "wait until then, then say so",
                "steps": [
                    {"tool": "wait_until", "args": {"at": at}},
                    {"tool": "echo", "args": {"text": "it is {{steps.s1.output}}"}},
                ],
            }
        )

        async def waiting() -> bool:
            return await count(nc, "agora.events.g-until.timer_started") == 1

        await wait_until(waiting, timeout_s=10, what="the task waiting on its timer")
        info = await nc.jetstream().consumer_info(EVENTS_STREAM, "executor")
        assert info.num_ack_pending == 0  # nothing is held while it waits

        await restart_everything(platform, nats_server)

        async def completed() -> bool:
            return await counted(nc, "agora.events.g-until.goal_completed", 1)

        await wait_until(completed, timeout_s=20, what="the wait completed")
        log = await all_events(nc, "agora.events.g-until.>")
        assert duplicates(log) == {}
        [timer] = [e for e in log if isinstance(e, TimerStarted)]
        assert (timer.purpose, timer.due_at) == ("wait_until", moment)
        assert len([e for e in log if isinstance(e, TimerFired)]) == 1
        waited, said = [e for e in log if isinstance(e, TaskCompleted)]
        assert waited.output == f"waited until {at}"
        assert waited.occurred_at >= moment  # never before its time
        assert said.output == f"it is waited until {at}"

        late = await all_events(nc, "agora.events.g-until-past.>")
        assert [e.output for e in late if isinstance(e, TaskCompleted)] == [
            "waited until 2019-12-31T23:00:00Z"
        ]
        assert not any(isinstance(e, TimerStarted) for e in late)

        # A malformed time never reaches the executor: the goal is rejected with the reason.
        [rejected] = await all_events(nc, "agora.events.g-until-bad.>")
        assert isinstance(rejected, GoalRejected)
        assert "'2026-12-24 18:00' is not a time" in rejected.reason
    finally:
        await platform.stop()


class _FailsOnce(BaseHTTPRequestHandler):
    """Answers 503 to the first request, 200 to every other; counts them."""

    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        failing = type(self).requests == 1
        body = b"busy" if failing else b"ok"
        self.send_response(503 if failing else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


async def test_a_retry_backoff_waits_on_a_durable_timer_through_a_restart_and_runs_once(
    nats_server: EmbeddedNats, nc: NatsClient, client: AgoraClient, settings: Settings
) -> None:
    handler = type("FailsOnce", (_FailsOnce,), {"requests": 0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    durable = replace(
        settings, timer_threshold_s=0.5, retry_backoff_s=2.0, http_allow=("127.0.0.1",)
    )
    platform = InProcessPlatform(durable)
    platform.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/status"
        await client.submit(
            {
                "goal_id": "g-backoff",
                "text": "fetch, again if it is busy",
                "steps": [{"tool": "http_get", "args": {"url": url}}],
            }
        )

        async def backing_off() -> bool:
            return await count(nc, "agora.events.g-backoff.timer_started") == 1

        await wait_until(backing_off, timeout_s=20, what="the retry waiting on its timer")
        for stream in (EVENTS_STREAM, INTAKE_STREAM):
            info = await nc.jetstream().consumer_info(stream, "executor")
            assert info.num_ack_pending == 0  # no delivery is held during the backoff

        await restart_everything(platform, nats_server)

        async def completed() -> bool:
            return await counted(nc, "agora.events.g-backoff.goal_completed", 1)

        await wait_until(completed, timeout_s=20, what="the retried goal completed")
        log = await all_events(nc, "agora.events.g-backoff.>")
        assert duplicates(log) == {}
        assert handler.requests == 2  # one call per attempt: the restart repeated none
        [failed] = [e for e in log if isinstance(e, ToolFailed)]
        [timer] = [e for e in log if isinstance(e, TimerStarted)]
        assert (failed.attempt, failed.transient) == (1, True)
        assert (timer.purpose, timer.attempt, timer.seconds) == ("retry", 2, 2.0)
        assert len([e for e in log if isinstance(e, TimerFired)]) == 1
        [done] = [e for e in log if isinstance(e, TaskCompleted)]
        assert (done.attempts, done.output) == (2, "ok")
        # When attempt 2 was called: its tool_called says, or (http_get has no side effects:
        # a call that ends within its grace has none) its outcome.
        second = next(
            (e.occurred_at for e in log if isinstance(e, ToolCalled) and e.attempt == 2),
            done.called_at,
        )
        assert second is not None
        assert second >= timer.due_at - timedelta(milliseconds=1)  # never early
    finally:
        await platform.stop()
        httpd.shutdown()
        httpd.server_close()


async def test_a_timer_that_fired_and_is_armed_again_as_a_new_copy_wakes_again(
    nc: NatsClient,
) -> None:
    """The early wake-up's re-arm: the fired copy's id is still in the duplicate window, so
    the new copy must carry its own or nats-server stores nothing and nothing wakes the task."""
    now = datetime.now(UTC)
    timer = TimerStarted(
        event_id="t-rearm",
        goal_id="g-rearm",
        occurred_at=now,
        causation_id=None,
        correlation_id="g-rearm",
        producer="test",
        iteration=1,
        task_id="s1",
        tool="sleep",
        attempt=1,
        timer_id="t-rearm",
        due_at=now,  # due: fires at once
        seconds=0.0,
    )
    timers = ScheduledTimers(nc.jetstream(), threshold_s=1.0)
    js = nc.jetstream()

    async def wakeups() -> int:
        info = await js.stream_info(INTAKE_STREAM, subjects_filter=INTAKE_WAKEUP)
        return int((info.state.subjects or {}).get(INTAKE_WAKEUP, 0))

    async def woken(times: int) -> bool:
        return await wakeups() == times

    await timers.arm(timer)
    await wait_until(lambda: woken(1), timeout_s=10, what="the timer's wake-up")
    await timers.arm(timer)  # the same copy again: a duplicate, stored no second time
    await timers.arm(timer, copy="early-1")
    await wait_until(lambda: woken(2), timeout_s=10, what="the new copy's wake-up")
    assert await wakeups() == 2
