"""The dashboard's HTML, pure: data in, markup out. Every value is escaped where it is put in;
the only script is the dashboard's own static file (no inline script: a strict CSP holds)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from events.approval_commands import APPROVAL_ID
from infra.dashboard.charts import BarItem, bar_chart, gantt_svg, plan_svg
from infra.dashboard.picture import GoalPicture
from infra.dashboard.queries import GOAL_STATUSES, PAGE_SIZES, Cursor, GoalFilter
from projections.gantt import format_ms, headline

__all__ = [
    "analytics_page",
    "approvals_list",
    "approvals_page",
    "context_section",
    "dead_letter_page",
    "dead_letters_page",
    "error_page",
    "goal_page",
    "goal_rows",
    "goals_page",
    "login_page",
    "plan_section",
    "table",
    "timeline_section",
]

_NAV = (
    ("/goals", "Goals"),
    ("/approvals", "Approvals"),
    ("/analytics", "Analytics"),
    ("/dlq", "Dead letters"),
)


def _text(value: Any) -> str:
    return "" if value is None else escape(str(value))


def layout(title: str, body: str, *, active: str = "", stream: str = "") -> str:
    """A whole page. ``stream``: the SSE URL the page's script follows for live updates."""
    nav = "".join(
        f'<a href="{href}"{" class=active" if href == active else ""}>{name}</a>'
        for href, name in _NAV
    )
    data = f' data-stream="{escape(stream)}"' if stream else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · agora</title>"
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script></head>'
        f"<body{data}><header><span class=brand>agora</span><nav>{nav}</nav>"
        '<span id="live-state" class="live-state">live</span></header>'
        f"<main>{body}</main></body></html>"
    )


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> str:
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_text(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _badge(status: Any) -> str:
    return f'<span class="badge {_text(status)}">{_text(status)}</span>'


def _when(value: Any) -> str:
    return _text(value)[:19].replace("T", " ")


def _score(value: Any) -> str:
    return f"{float(value):.2f}" if isinstance(value, int | float) else ""


def _duration(value: Any) -> str:
    return format_ms(float(value)) if isinstance(value, int | float) else ""


# -- goals ------------------------------------------------------------------------------


def goal_rows(
    rows: Sequence[dict[str, Any]], goal_filter: GoalFilter, *, more: Cursor | None
) -> str:
    """The goals table's body and the pager: what a live update replaces."""
    if not rows:
        body = '<tr><td colspan=7 class="empty">no goals match</td></tr>'
    else:
        body = "".join(
            f'<tr data-goal="{_text(r["goal_id"])}">'
            f'<td><a href="/goals/{_text(r["goal_id"])}">{_text(r["goal_id"])}</a></td>'
            f"<td>{_badge(r['status'])}</td><td class=text>{_text(r['text'])}</td>"
            f"<td>{_when(r['submitted_at'])}</td><td>{_duration(r['duration_ms'])}</td>"
            f"<td>{_text(r['iterations'])}</td>"
            f"<td>{_score(r['score'])}</td></tr>"
            for r in rows
        )
    pager = []
    if goal_filter.after is not None:
        newest = goal_filter.query_string()
        pager.append(f'<a href="/goals?{escape(newest)}">« newest</a>')
    if more is not None:
        older = goal_filter.query_string(after=more)
        pager.append(f'<a class="older" href="/goals?{escape(older)}">older »</a>')
    return (
        f'<tbody id="goal-rows">{body}</tbody>'
        f'<tfoot><tr><td colspan=7 class="pager">{" ".join(pager)}</td></tr></tfoot>'
    )


def goals_page(
    rows: Sequence[dict[str, Any]],
    goal_filter: GoalFilter,
    counts: dict[str, int],
    *,
    more: Cursor | None,
) -> str:
    options = "".join(
        f'<option value="{s}"{" selected" if s == goal_filter.status else ""}>'
        f"{s} ({counts.get(s, 0)})</option>"
        for s in GOAL_STATUSES
    )
    sizes = "".join(
        f"<option{' selected' if n == goal_filter.limit else ''}>{n}</option>" for n in PAGE_SIZES
    )
    total = sum(counts.values())
    form = (
        '<form class="filters" method="get" action="/goals">'
        f'<input type="search" name="q" placeholder="search text or id" '
        f'value="{escape(goal_filter.search)}" maxlength="200" aria-label="search">'
        f'<select name="status" aria-label="status"><option value="">any status ({total})'
        f"</option>{options}</select>"
        f'<select name="limit" aria-label="page size">{sizes}</select>'
        "<button>filter</button></form>"
    )
    head = "".join(
        f"<th>{c}</th>"
        for c in ("goal", "status", "text", "submitted (UTC)", "took", "iter.", "score")
    )
    fragment = f"/goals/rows?{goal_filter.query_string(after=goal_filter.after)}"
    body = (
        f"<h1>Goals</h1>{form}"
        f'<table class="goals" data-refresh="{escape(fragment)}"><thead><tr>{head}</tr></thead>'
        f"{goal_rows(rows, goal_filter, more=more)}</table>"
    )
    return layout("Goals", body, active="/goals", stream="/goals/stream")


# -- one goal ---------------------------------------------------------------------------


def timeline_section(picture: GoalPicture) -> str:
    timeline = picture.timeline
    if timeline is None:
        return '<p class="empty">no events yet: the planner has not read this goal</p>'
    return (
        f'<p class="headline" data-status="{escape(timeline.status)}">'
        f"{escape(headline(timeline))}</p>"
        f'<div class="scroll">{gantt_svg(timeline)}</div>'
        '<p class="legend"><span class=planner>planner</span><span class=executor>executor'
        "</span><span class=evaluator>evaluator</span><span class=memory>memory</span>"
        "<span class=llm>model call</span><span class=tool>tool call</span></p>"
    )


def plan_section(picture: GoalPicture) -> str:
    iteration = f" (iteration {picture.plan_iteration})" if picture.plan_iteration else ""
    return (
        f"<h2>Plan{iteration}</h2>"
        f'<div class="scroll">{plan_svg(picture.plan, picture.task_statuses)}</div>'
    )


def context_section(picture: GoalPicture) -> str:
    if not picture.context:
        return '<h2>Memory context</h2><p class="empty">memory recalled nothing for this goal</p>'
    items = "".join(
        f'<li><span class="score">{item.score:.2f}</span> {_text(item.text[:300])} '
        f'<span class="provenance">from <a href="/goals/{_text(item.goal_id)}">'
        f"{_text(item.goal_id)}</a> · {_text(item.kind)}</span></li>"
        for item in picture.context[:20]
    )
    return f'<h2>Memory context</h2><ol class="context">{items}</ol>'


def goal_page(
    goal_id: str,
    goal: dict[str, Any] | None,
    picture: GoalPicture,
    facts: str,
    *,
    approvals: str,
    drawn_from: int = 0,
) -> str:
    """``drawn_from``: the last log sequence of the events drawn, which the live stream
    replays up to before it redraws."""
    if goal is None:
        summary = '<p class="empty">not in the views yet</p>'
    else:
        result = goal.get("result") or goal.get("reason") or ""
        summary = (
            f'<p id="goal-status">{_badge(goal["status"])} submitted {_when(goal["submitted_at"])}'
            f" · {_text(goal['iterations'])} iteration(s)</p>"
            f"<blockquote>{_text(goal['text'])}</blockquote>"
            + (f'<p class="result">{_text(str(result)[:500])}</p>' if result else "")
        )
    body = (
        f"<h1>Goal <code>{escape(goal_id)}</code></h1>{summary}"
        "<section><h2>Waiting for approval</h2>"
        f'<div id="approvals" class="approvals">{approvals}</div></section>'
        f'<section><h2>Timeline</h2><div id="timeline">{timeline_section(picture)}</div>'
        "</section>"
        '<section class="live"><h2>Live model output</h2>'
        '<pre id="live-output" class="empty">nothing streaming</pre></section>'
        f'<section id="plan">{plan_section(picture)}</section>'
        f'<section><h2>Facts</h2><div id="facts">{facts}</div></section>'
        f'<section id="context">{context_section(picture)}</section>'
    )
    stream = f"/goals/{goal_id}/stream?seen={drawn_from}"
    return layout(f"Goal {goal_id}", body, active="/goals", stream=stream)


# -- approvals --------------------------------------------------------------------------


def _json_value(raw: Any) -> Any:
    """A JSON column's value (the views hand JSON over as text)."""
    import json

    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw


def _pretty_args(raw: Any) -> str:
    """A call's arguments as indented JSON to read and edit."""
    import json

    return json.dumps(_json_value(raw), indent=2, ensure_ascii=False, default=str)


def approvals_list(rows: Sequence[dict[str, Any]], *, show_goal: bool = True) -> str:
    """Each waiting call with what answers it: approve, approve with edited arguments, deny
    with a reason. The script posts the answer; the server publishes it on the intake."""
    if not rows:
        return '<p class="empty">nothing waits for an approval</p>'
    blocks = []
    for row in rows:
        approval = _text(row["approval_id"])
        goal = (
            f' of <a href="/goals/{_text(row["goal_id"])}">{_text(row["goal_id"])}</a>'
            if show_goal
            else ""
        )
        named = _json_value(row.get("answerers"))
        answerers = ", ".join(map(str, named)) if isinstance(named, list) and named else "anyone"
        blocks.append(
            f'<div class="approval" data-approval="{approval}">'
            f'<p class="ask"><code>{_text(row["tool"])}</code> for task '
            f"<b>{_text(row['task_id'])}</b>{_model_call(row['approval_id'])}{goal} · "
            f"{_text(row['reason'])}</p>"
            f'<p class="meta">asked {_when(row["requested_at"])} · denied unless answered by '
            f"{_when(row['deadline'])} · may answer: {_text(answerers)}</p>"
            "<label>arguments (edit them to run the call with others)"
            f'<textarea class="args" rows="4" spellcheck="false">{_text(_pretty_args(row["args"]))}'
            "</textarea></label>"
            '<div class="answer"><input class="by" placeholder="your name (recorded)" '
            'maxlength="200" aria-label="by">'
            '<button class="approve">approve</button>'
            '<button class="approve-edited">approve with these arguments</button>'
            '<input class="reason" placeholder="reason (a denial needs one)" maxlength="2000" '
            'aria-label="reason"><button class="deny">deny</button></div>'
            '<p class="state"></p></div>'
        )
    return "".join(blocks)


def _model_call(approval_id: str) -> str:
    """For a call a ReAct task's model chose: which of its thinks asked for it."""
    match = APPROVAL_ID.fullmatch(approval_id)
    if match is None or match.group(4) is None:
        return ""
    return f" (its model's call {int(match.group(5))} of think {int(match.group(4))})"


def approvals_page(listing: str) -> str:
    body = (
        "<h1>Approvals</h1><p>Tool calls that wait for a person, oldest first. An answer goes "
        "to the planner on <code>agora.intake.approval</code>, as <code>agora approve</code> "
        "and <code>agora deny</code> send it.</p>"
        f'<div id="approvals" class="approvals" data-refresh="/approvals/rows">{listing}</div>'
    )
    return layout("Approvals", body, active="/approvals", stream="/goals/stream")


# -- analytics --------------------------------------------------------------------------


def _items(rows: Sequence[dict[str, Any]], label: str, value: str, fmt: str) -> list[BarItem]:
    items = []
    for row in rows:
        number = float(row[value] or 0)
        shown = format_ms(number) if fmt == "ms" else fmt.format(number)
        items.append(BarItem(str(row[label]), number, shown))
    return items


def analytics_page(data: dict[str, list[dict[str, Any]]]) -> str:
    tools, days, actors = data["tools"], data["cost_by_day"], data["cost_by_actor"]
    charts = [
        bar_chart(_items(data["statuses"], "status", "goals", "{:.0f}"), title="goals by status"),
        bar_chart(_items(tools, "tool", "calls", "{:.0f}"), title="tool calls"),
        bar_chart(_items(tools, "tool", "p95_ms", "ms"), title="tool p95 duration"),
        bar_chart(_items(tools, "tool", "failures", "{:.0f}"), title="tool failures"),
        bar_chart(_items(actors, "actor", "cost_usd", "${:.4f}"), title="model cost by agent"),
        bar_chart(_items(actors, "actor", "tokens_out", "{:.0f} tok"), title="tokens out by agent"),
        bar_chart(_items(days, "day", "cost_usd", "${:.4f}"), title="model cost by day"),
        bar_chart(_items(days, "day", "goals", "{:.0f}"), title="goals by day"),
    ]
    body = f'<h1>Analytics</h1><div class="charts">{"".join(charts)}</div>'
    return layout("Analytics", body, active="/analytics", stream="/goals/stream")


# -- dead letters -----------------------------------------------------------------------


def dead_letters_page(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        listing = '<p class="empty">no dead letters: every message was handled</p>'
    else:
        body = []
        for row in rows:
            record = _text(row["id"])
            if "problem" in row:
                body.append(
                    f"<tr><td>{record}</td><td colspan=5>unreadable: {_text(row['problem'])}"
                    "</td><td></td></tr>"
                )
                continue
            done = "redriven" if row["redriven"] else ""
            button = (
                f'<button class="retry" data-record="{record}"'
                f"{' disabled' if done else ''}>retry</button>"
            )
            body.append(
                f'<tr data-record="{record}"><td><a href="/dlq/{record}">{record}</a></td>'
                f"<td>{_when(row['stored_at'])}</td><td>{_text(row['consumer'])}</td>"
                f"<td>{_text(row['reason'])}</td><td class=text>{_text(row['error'][:160])}</td>"
                f'<td class="state">{done}</td><td>{button}</td></tr>'
            )
        head = "".join(
            f"<th>{c}</th>" for c in ("id", "stored (UTC)", "consumer", "reason", "error", "", "")
        )
        listing = (
            f'<table class="dlq"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table>"
        )
    body_html = (
        "<h1>Dead letters</h1><p>Messages a service gave up on, with the original bytes and "
        "why. Retry hands one back to the consumer that gave up on it, once.</p>" + listing
    )
    return layout("Dead letters", body_html, active="/dlq")


def dead_letter_page(detail: dict[str, Any], original: Sequence[str]) -> str:
    record = _text(detail["id"])
    fields = "".join(
        f"<tr><th>{escape(key)}</th><td>{_text(value)}</td></tr>"
        for key, value in detail.items()
        if key not in ("headers",)
    )
    headers = "".join(
        f"<tr><th>{_text(k)}</th><td>{_text(v)}</td></tr>"
        for k, v in dict(detail.get("headers") or {}).items()
    )
    button = (
        f'<button class="retry" data-record="{record}"'
        f"{' disabled' if detail.get('redriven') else ''}>retry</button>"
        '<span class="state"></span>'
    )
    body = (
        f'<h1>Dead letter {record}</h1><div data-record="{record}">{button}</div>'
        f'<table class="fields">{fields}</table><h2>Headers</h2>'
        f'<table class="fields">{headers}</table><h2>Original bytes</h2>'
        f'<pre class="original">{escape(chr(10).join(original))}</pre>'
    )
    return layout(f"Dead letter {detail['id']}", body, active="/dlq")


# -- login and errors -------------------------------------------------------------------


def login_page(*, failed: bool = False, then: str = "/goals") -> str:
    note = '<p class="error">that token is not the one</p>' if failed else ""
    body = (
        f"<h1>Sign in</h1>{note}<form method=post action=/login class=login>"
        f'<input type=hidden name=then value="{escape(then)}">'
        '<input type=password name=token placeholder="bearer token" autocomplete=off '
        'aria-label="token" required><button>sign in</button></form>'
        "<p>The token is the dashboard's bearer token (AGORA_UI_TOKEN or its token file).</p>"
    )
    return layout("Sign in", body)


def error_page(title: str, message: str) -> str:
    return layout(title, f'<h1>{escape(title)}</h1><p class="error">{escape(message)}</p>')
