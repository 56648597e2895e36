"""SVG pictures for the dashboard, pure: a timeline, a plan, numbers in, markup out.

The Gantt chart is the terminal's (:mod:`projections.gantt`) drawn in SVG: the same rows from
:meth:`Timeline.rows`, the same positions from :meth:`Timeline.fraction` and the same words
from :func:`row_detail`. Every text that came from an event is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from events.model import TaskSpec
from projections.gantt import format_ms, row_detail
from projections.timeline import Bar, Timeline

__all__ = ["BarItem", "bar_chart", "gantt_svg", "plan_svg"]

_ROW_H = 22
_LABEL_W = 230
_DETAIL_W = 300
_AXIS_H = 24
_INDENT = 14
# Who did it, by colour; nested calls by what they were.
_COLOURS = {
    "planner": "#7b61ff",
    "executor": "#2f80ed",
    "evaluator": "#eb5757",
    "memory": "#27ae60",
    "llm": "#f2a900",
    "tool": "#56ccf2",
    "outcome": "#333333",
    "approval": "#f2994a",  # a person's wait
}
_STATUS_COLOURS = {
    "completed": "#27ae60",
    "failed": "#eb5757",
    "cancelled": "#999999",
    "running": "#2f80ed",
    "scheduled": "#bdbdbd",
    "paused": "#f2a900",
}


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _colour(bar: Bar) -> str:
    if bar.kind in ("llm", "tool", "outcome", "approval"):
        return _COLOURS[bar.kind]
    return _COLOURS.get(bar.actor, "#888888")


def _row(bar: Bar, timeline: Timeline, y: int, chart_w: int) -> str:
    x0 = _LABEL_W + timeline.fraction(bar.start) * chart_w
    x1 = _LABEL_W + timeline.fraction(bar.end) * chart_w
    detail = row_detail(bar)
    label = escape(_cut(bar.label, 30 - 2 * bar.depth))
    tip = escape(f"{bar.label} ({bar.actor}): {detail}" if detail else f"{bar.label}")
    parts = [
        f'<g class="bar" data-kind="{bar.kind}" data-actor="{escape(bar.actor)}" '
        f'data-status="{escape(bar.status)}"><title>{tip}</title>',
        f'<text x="{4 + bar.depth * _INDENT}" y="{y + 15}" class="label">{label}</text>',
    ]
    if bar.instant:
        for mark in bar.children or [bar]:
            cx = _LABEL_W + timeline.fraction(mark.start) * chart_w
            parts.append(f'<path d="M{cx:.1f} {y + 4} l6 7 l-6 7 l-6 -7 z" fill="{_colour(bar)}"/>')
    else:
        if bar.queued_from is not None and bar.queued_from < bar.start:
            xq = _LABEL_W + timeline.fraction(bar.queued_from) * chart_w
            parts.append(
                f'<rect x="{xq:.1f}" y="{y + 6}" width="{max(x0 - xq, 0.5):.1f}" height="10" '
                f'fill="{_colour(bar)}" opacity="0.25" class="wait"/>'
            )
        height = 14 if bar.depth == 0 else 10
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + (_ROW_H - height) // 2}" width="{max(x1 - x0, 2):.1f}" '
            f'height="{height}" rx="2" fill="{_colour(bar)}" class="run"/>'
        )
    parts.append(
        f'<text x="{_LABEL_W + chart_w + 8}" y="{y + 15}" class="detail">'
        f"{escape(_cut(detail, 46))}</text></g>"
    )
    return "".join(parts)


def gantt_svg(timeline: Timeline, width: int = 1100) -> str:
    """The goal's steps on one time axis: each step a row, its nested calls under it, parallel
    tasks as bars over the same stretch of time."""
    rows = timeline.rows()
    chart_w = max(width - _LABEL_W - _DETAIL_W, 200)
    height = _AXIS_H + _ROW_H * len(rows) + 6
    ticks = []
    for i in range(5):
        x = _LABEL_W + chart_w * i / 4
        ticks.append(
            f'<line x1="{x:.1f}" y1="{_AXIS_H - 4}" x2="{x:.1f}" y2="{height}" class="grid"/>'
            f'<text x="{x:.1f}" y="14" class="tick">'
            f"{escape(format_ms(timeline.duration_ms * i / 4))}</text>"
        )
    body = [_row(bar, timeline, _AXIS_H + i * _ROW_H, chart_w) for i, bar in enumerate(rows)]
    return (
        f'<svg class="gantt" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="timeline of goal {escape(timeline.goal_id)}">'
        + "".join(ticks)
        + "".join(body)
        + "</svg>"
    )


def _layers(tasks: Sequence[TaskSpec]) -> dict[str, int]:
    """Each task's column: one more than the deepest task it depends on."""
    known = {task.task_id for task in tasks}
    depth: dict[str, int] = {}
    remaining = list(tasks)
    while remaining:
        progressed = False
        for task in list(remaining):
            deps = [d for d in task.depends_on if d in known]
            if all(d in depth for d in deps):
                depth[task.task_id] = 1 + max((depth[d] for d in deps), default=-1)
                remaining.remove(task)
                progressed = True
        if not progressed:  # a cycle cannot pass intake; draw what is left in one column
            for task in remaining:
                depth[task.task_id] = 0
            break
    return depth


def plan_svg(tasks: Sequence[TaskSpec], statuses: Mapping[str, str]) -> str:
    """The plan as a DAG: a box per task (coloured by its status), an arrow per dependency,
    tasks that may run in parallel in one column."""
    if not tasks:
        return '<p class="empty">no plan yet</p>'
    layers = _layers(tasks)
    columns: dict[int, list[TaskSpec]] = {}
    for task in tasks:
        columns.setdefault(layers[task.task_id], []).append(task)
    box_w, box_h, gap_x, gap_y = 170, 40, 60, 16
    place: dict[str, tuple[float, float]] = {}
    for col, members in columns.items():
        for row, task in enumerate(members):
            place[task.task_id] = (10 + col * (box_w + gap_x), 10 + row * (box_h + gap_y))
    width = 20 + len(columns) * (box_w + gap_x) - gap_x
    height = 20 + max(len(m) for m in columns.values()) * (box_h + gap_y) - gap_y
    edges, boxes = [], []
    for task in tasks:
        x, y = place[task.task_id]
        for dep in task.depends_on:
            if dep in place:
                dx, dy = place[dep]
                edges.append(
                    f'<path class="edge" d="M{dx + box_w:.0f} {dy + box_h / 2:.0f} '
                    f"C{dx + box_w + gap_x / 2:.0f} {dy + box_h / 2:.0f} "
                    f'{x - gap_x / 2:.0f} {y + box_h / 2:.0f} {x:.0f} {y + box_h / 2:.0f}" '
                    'marker-end="url(#arrow)"/>'
                )
        status = statuses.get(task.task_id, "planned")
        colour = _STATUS_COLOURS.get(status, "#e0e0e0")
        boxes.append(
            f'<g class="task" data-task="{escape(task.task_id)}" data-status="{escape(status)}">'
            f"<title>{escape(task.description)}</title>"
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="#fff" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x + 8}" y="{y + 16}" class="task-id">{escape(_cut(task.task_id, 22))}'
            f"</text>"
            f'<text x="{x + 8}" y="{y + 32}" class="task-tool">'
            f"{escape(_cut(f'{task.tool} · {status}', 26))}</text></g>"
        )
    return (
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="plan">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0 0 L10 5 L0 10 z" fill="#888"/></marker>'
        "</defs>" + "".join(edges) + "".join(boxes) + "</svg>"
    )


@dataclass(frozen=True, slots=True)
class BarItem:
    label: str
    value: float
    shown: str  # the value as the chart prints it


def bar_chart(items: Sequence[BarItem], *, title: str, width: int = 520) -> str:
    """Horizontal bars, longest for the largest value."""
    if not items:
        return f'<figure class="chart"><figcaption>{escape(title)}</figcaption>' + (
            '<p class="empty">nothing recorded yet</p></figure>'
        )
    label_w, row_h = 150, 22
    chart_w = width - label_w - 90
    top = max((item.value for item in items), default=0.0) or 1.0
    rows = []
    for i, item in enumerate(items):
        y = i * row_h
        w = max(chart_w * item.value / top, 1.0)
        rows.append(
            f'<g class="chart-bar"><text x="0" y="{y + 15}" class="label">'
            f"{escape(_cut(item.label, 22))}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="14" rx="2" fill="#2f80ed"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" class="detail">{escape(item.shown)}'
            "</text></g>"
        )
    height = row_h * len(items) + 4
    return (
        f'<figure class="chart"><figcaption>{escape(title)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">' + "".join(rows) + "</svg></figure>"
    )
