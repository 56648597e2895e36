"""The dashboard in a real headless Chromium (the distribution's, scripts/install-browser.sh)
against `agora up` and its dashboard, real processes throughout: a goal submitted from the CLI
appears on the goals page and its timeline grows live, without a reload; a dead letter is
retried from its page."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser import (
    RunningPlatform,
    agora,
    agora_up,
    chromium,
    dead_letter_an_undecodable_goal,
)

WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    with agora_up(tmp_path_factory.mktemp("dashboard")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    opened.set_default_timeout(WAIT_MS)
    yield opened
    opened.close()


# Before the page's own script: every status the timeline's headline shows, in order.
_RECORD_TIMELINE_STATUSES = """
document.addEventListener("DOMContentLoaded", () => {
  const timeline = document.getElementById("timeline");
  const seen = () => (timeline.querySelector(".headline") || {dataset: {}}).dataset.status;
  window.agoraStatuses = [seen()];
  new MutationObserver(() => window.agoraStatuses.push(seen()))
    .observe(timeline, {childList: true, subtree: true});
});
"""


def _mark_loaded(page: Page) -> None:
    """A mark that only lives as long as this document: a reload would lose it."""
    page.evaluate("window.agoraTestMark = 'no reload'")


def _not_reloaded(page: Page) -> bool:
    return page.evaluate("window.agoraTestMark") == "no reload"


def test_a_goal_from_the_cli_appears_and_its_timeline_grows_live(
    platform: RunningPlatform, page: Page
) -> None:
    page.goto(f"{platform.dashboard}/goals")
    expect(page.locator("#live-state[data-state=live]")).to_be_attached()  # the stream is open
    _mark_loaded(page)
    goal_id = "g-browser-live"
    # Its second step waits for a person: the goal stays running until the test approves it.
    command = {
        "goal_id": goal_id,
        "text": "compute 6*7, then say it (approved by a person)",
        "steps": [
            {"id": "a", "tool": "calculator", "args": {"expression": "6*7"}},
            {"id": "b", "tool": "echo", "args": {"text": "{{steps.a.output}}"}}
            | {"depends_on": ["a"]},
        ],
        "approval": {"require": ["echo"]},
    }
    submitted = agora(platform, "goal", "--file", "-", stdin=json.dumps(command))
    assert submitted.returncode == 0, submitted.stderr

    row = page.locator(f'tr[data-goal="{goal_id}"]')
    expect(row.locator(".badge")).to_have_text("waiting_approval")
    assert _not_reloaded(page)

    row.locator("a").click()
    page.wait_for_url(f"**/goals/{goal_id}")
    _mark_loaded(page)
    bars = page.locator("#timeline g.bar")
    expect(page.locator('#plan g.task[data-task="a"]')).to_have_attribute(
        "data-status", "completed"
    )
    before = bars.count()
    assert before > 0
    waiting = page.locator(f'#approvals [data-approval="{goal_id}/1/b"]')
    expect(waiting).to_contain_text("echo")

    approved = agora(platform, "approve", f"{goal_id}/1/b", "--by", "browser-test")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    expect(waiting).to_have_count(0)  # answered elsewhere: gone from the page, live

    expect(page.locator("#timeline .headline")).to_have_attribute("data-status", "completed")
    expect(page.locator("#goal-status .badge")).to_have_text("completed")
    expect(page.locator('#plan g.task[data-task="b"]')).to_have_attribute(
        "data-status", "completed"
    )
    assert bars.count() > before
    assert _not_reloaded(page)

    # Opened afresh, the finished goal's page never steps back to an older picture while its
    # live stream replays the goal from the first event.
    page.add_init_script(_RECORD_TIMELINE_STATUSES)
    page.goto(f"{platform.dashboard}/goals/{goal_id}")
    expect(page.locator("body[data-events]")).to_be_attached()  # the stream's redraw came
    assert set(page.evaluate("window.agoraStatuses")) == {"completed"}


def test_approvals_are_answered_from_the_page(platform: RunningPlatform, page: Page) -> None:
    goal_id = "g-browser-approvals"
    # Two calls that wait at once, approved as asked and with edited arguments; a third, asked
    # only once both have run, denied.
    steps: list[dict[str, object]] = [
        {"id": name, "tool": "echo", "args": {"text": f"as asked {name}"}}
        for name in ("plain", "edited")
    ]
    steps.append(
        {"id": "denied", "tool": "echo", "args": {"text": "no"}, "depends_on": ["plain", "edited"]}
    )
    command = {
        "goal_id": goal_id,
        "text": "three calls for a person to answer",
        "steps": steps,
        "approval": {"require": ["echo"]},
    }
    page.goto(f"{platform.dashboard}/approvals")
    expect(page.locator("#live-state[data-state=live]")).to_be_attached()
    _mark_loaded(page)
    submitted = agora(platform, "goal", "--file", "-", stdin=json.dumps(command))
    assert submitted.returncode == 0, submitted.stderr

    def block(task: str) -> Locator:
        return page.locator(f'[data-approval="{goal_id}/1/{task}"]')

    for task in ("plain", "edited"):
        expect(block(task)).to_contain_text(goal_id)  # appeared live

    block("plain").locator("button.approve").click()
    expect(block("plain").locator(".state")).to_have_attribute("data-result", "granted")

    edited = block("edited")
    edited.locator("textarea.args").fill("{not json")
    edited.locator("button.approve-edited").click()
    expect(edited.locator(".state")).to_have_attribute("data-result", "invalid")
    # JSON the tool's schema refuses: the planner rejects it and the call keeps waiting.
    edited.locator("textarea.args").fill('{"words": 1}')
    edited.locator("button.approve-edited").click()
    expect(edited.locator(".state")).to_have_attribute("data-result", "rejected")
    edited.locator("textarea.args").fill('{"text": "edited in the browser"}')
    edited.locator("input.by").fill("ana")
    edited.locator("button.approve-edited").click()
    expect(edited.locator(".state")).to_have_attribute("data-result", "granted")

    denied = block("denied")  # appears live once both have run
    denied.locator("button.deny").click()
    expect(denied.locator(".state")).to_have_attribute("data-result", "invalid")  # no reason
    denied.locator("input.reason").fill("not this one")
    denied.locator("button.deny").click()
    expect(denied.locator(".state")).to_have_attribute("data-result", "denied")
    assert _not_reloaded(page)

    page.goto(f"{platform.dashboard}/goals/{goal_id}")
    expect(page.locator("#goal-status .badge")).to_have_text("failed")  # a denial is final
    expect(page.locator("#approvals")).to_contain_text("nothing waits")
    ran = agora(
        platform,
        "query",
        "--format",
        "json",
        f"SELECT task_id, status, output FROM tasks WHERE goal_id = '{goal_id}' ORDER BY task_id",
    )
    assert ran.returncode == 0, ran.stderr
    tasks = {row["task_id"]: row for row in json.loads(ran.stdout)}
    assert tasks["plain"]["output"] == "as asked plain"
    assert tasks["edited"]["output"] == "edited in the browser"
    assert tasks["denied"]["status"] == "failed"


def test_a_dead_letter_is_retried_from_its_page(platform: RunningPlatform, page: Page) -> None:
    record = dead_letter_an_undecodable_goal(platform)
    page.goto(f"{platform.dashboard}/dlq")
    row = page.locator(f'tr[data-record="{record}"]')
    expect(row).to_contain_text("planner")
    row.locator("button.retry").click()
    state = row.locator(".state")
    expect(state).to_have_attribute("data-result", "ok")
    expect(state).to_contain_text("redriven to planner")
    expect(row.locator("button.retry")).to_be_disabled()

    page.goto(f"{platform.dashboard}/dlq/{record}")  # the record remembers it
    expect(page.locator("button.retry")).to_be_disabled()
    redriven = page.locator('table.fields tr:has(th:text-is("redriven")) td')
    expect(redriven).to_have_text("True")
