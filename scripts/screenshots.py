"""`make screenshots`: PNGs of the dashboard's main pages, into docs/images/ (the README shows
them). A real `agora up` in a temporary data dir, a few goals (a DAG, a failure, one waiting
for approval, a dead letter), then headless Chromium (the distribution's) over each page."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser import (
    RunningPlatform,
    agora,
    agora_up,
    chromium,
    dead_letter_an_undecodable_goal,
)

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
VIEWPORT = {"width": 1280, "height": 760}
DAG_GOAL = "g-report"


def _submit(platform: RunningPlatform, command: dict[str, object], *, wait: bool) -> None:
    args = ["goal", "--file", "-", *(["--wait"] if wait else [])]
    done = agora(platform, *args, stdin=json.dumps(command))
    if done.returncode not in (0, 1):  # 1: the goal failed, as one of them should
        raise RuntimeError(f"agora goal: {done.stdout}{done.stderr}")


def _seed(platform: RunningPlatform) -> None:
    _submit(
        platform,
        {
            "goal_id": DAG_GOAL,
            "text": "compute two figures in parallel, then report them",
            "steps": [
                {"id": "area", "tool": "calculator", "args": {"expression": "17*23"}},
                {"id": "pause", "tool": "sleep", "args": {"seconds": 0.3}},
                {"id": "volume", "tool": "calculator", "args": {"expression": "2**10"}},
                {
                    "id": "report",
                    "tool": "echo",
                    "args": {"text": "{{steps.area.output}} and {{steps.volume.output}}"},
                    "depends_on": ["area", "pause", "volume"],
                },
            ],
            "expect": {"contains": "391"},
        },
        wait=True,
    )
    for n, expression in enumerate(("6*7", "2**16", "355/113"), start=1):
        _submit(
            platform,
            {
                "goal_id": f"g-calc-{n}",
                "text": f"compute {expression}",
                "steps": [{"tool": "calculator", "args": {"expression": expression}}],
            },
            wait=True,
        )
    _submit(
        platform,
        {
            "goal_id": "g-broken",
            "text": "divide by zero",
            "steps": [{"tool": "calculator", "args": {"expression": "1/0"}}],
            "max_iterations": 1,
        },
        wait=True,
    )
    _submit(
        platform,
        {
            "goal_id": "g-notes",
            "text": "write the release notes (a person approves the write)",
            "steps": [{"tool": "write_file", "args": {"path": "notes.md", "content": "# 1.0\n"}}],
            "approval": {"require": ["write_file"]},
        },
        wait=False,
    )
    dead_letter_an_undecodable_goal(platform)


def _shoot(page: Page, name: str) -> None:
    path = IMAGES / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KiB")


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="agora-screenshots-") as data_dir,
        agora_up(Path(data_dir)) as platform,
        chromium() as browser,
    ):
        _seed(platform)
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(20_000)
        base = platform.dashboard
        page.goto(f"{base}/goals")
        expect(page.locator('tr[data-goal="g-notes"] .badge')).to_have_text("waiting_approval")
        _shoot(page, "goals")
        page.set_viewport_size({"width": VIEWPORT["width"], "height": 1180})  # down to the plan
        page.goto(f"{base}/goals/{DAG_GOAL}")
        expect(page.locator("#timeline .headline")).to_have_attribute("data-status", "completed")
        expect(page.locator('#plan g.task[data-task="report"]')).to_have_attribute(
            "data-status", "completed"
        )
        _shoot(page, "goal")
        page.set_viewport_size(VIEWPORT)
        page.goto(f"{base}/approvals")
        expect(page.locator('[data-approval="g-notes/1/s1"]')).to_be_visible()
        _shoot(page, "approvals")
        page.goto(f"{base}/analytics")
        expect(page.locator("figure.chart").first).to_be_visible()
        _shoot(page, "analytics")
        page.goto(f"{base}/dlq")
        expect(page.locator("table.dlq button.retry").first).to_be_visible()
        _shoot(page, "dead-letters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
