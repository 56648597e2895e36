"""Headless Chromium from the distribution's packages (scripts/install-browser.sh), driven by
Playwright for Python, and `agora up` with its dashboard: what the browser tests and
`make screenshots` share. Playwright's own browser builds are never used."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from events.subjects import DLQ_STREAM, INTAKE_GOAL
from infra.bus.connection import connect
from infra.settings import Settings

__all__ = [
    "CHROMIUM",
    "RunningPlatform",
    "agora",
    "agora_up",
    "chromium",
    "dead_letter_an_undecodable_goal",
]

CHROMIUM = Path(os.environ.get("AGORA_CHROMIUM", "/usr/bin/chromium"))
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
AGORA = [sys.executable, "-m", "infra.cli"]
DASHBOARD_LINE = "the dashboard at "


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"no browser at {CHROMIUM}: run `make browser` (make test does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(FLAGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass(frozen=True)
class RunningPlatform:
    env: dict[str, str]  # what a CLI command needs to reach it
    dashboard: str  # the dashboard's base URL


def agora(
    platform: RunningPlatform, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """One `agora` command against the platform, as a user runs it."""
    return subprocess.run(
        [*AGORA, *args],
        env=platform.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextlib.contextmanager
def agora_up(data_dir: Path) -> Iterator[RunningPlatform]:
    """`agora up` (secure by default) with its dashboard on a free loopback port, until it
    prints the dashboard's URL; stopped with Ctrl-C afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGORA_")}
    env |= {
        "AGORA_DATA_DIR": str(data_dir),
        "AGORA_DURABILITY": "os",
        "AGORA_NATS_PORT": "0",
        "AGORA_UI_PORT": "0",
    }
    up = subprocess.Popen(
        [*AGORA, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert up.stdout is not None
    try:
        printed: list[str] = []
        deadline = time.monotonic() + 60
        while not printed or DASHBOARD_LINE not in printed[-1]:
            line = up.stdout.readline()
            if not line and up.poll() is not None:
                raise RuntimeError(f"agora up exited early: {printed}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"agora up printed no dashboard URL: {printed}")
            printed.append(line)
        url = printed[-1].split(DASHBOARD_LINE, 1)[1].strip()
        yield RunningPlatform(env=env, dashboard=url)
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.communicate()


async def _publish_undecodable_goal(platform: RunningPlatform) -> int:
    settings = Settings.from_env(platform.env)
    nc = await connect(settings, "browser-test")
    try:
        js = nc.jetstream()
        before = (await js.stream_info(DLQ_STREAM)).state.last_seq
        await js.publish(INTAKE_GOAL, b"\xff not json {", headers={"Nats-Msg-Id": "c-garbage"})
        for _ in range(400):  # at most 20 s
            last = (await js.stream_info(DLQ_STREAM)).state.last_seq
            if last > before:
                return int(last)
            await asyncio.sleep(0.05)
        raise AssertionError("the planner did not dead-letter the undecodable command")
    finally:
        await nc.close()


def dead_letter_an_undecodable_goal(platform: RunningPlatform) -> int:
    """Bytes no goal can own, on the intake subject; the DLQ record's id once it is stored."""
    # On a thread of its own: Playwright's sync API runs an event loop on this one.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, _publish_undecodable_goal(platform)).result()
