"""A timeline drawn as a Gantt chart in lines of plain text, for a terminal of any width.

Pure: a :class:`~projections.timeline.Timeline` and a width in, lines out. Each step is one
row: its label, its bar on the goal's time axis, and what it did (tokens, cost, duration,
outcome). Nested calls are indented under their step. A task's wait between being scheduled
and starting is drawn light (``░``), its run dark (``█``); an instant (a memory write, the
outcome) is a diamond. In a narrow terminal labels are cut with an ellipsis and the details
move to a line of their own under the row, so nothing but label tails is lost. What a row
says (``row_detail``, ``headline``, ``format_ms``) the web dashboard's SVG chart says too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from projections.timeline import OPEN_STATUSES, Bar, Timeline

__all__ = ["format_ms", "headline", "render_timeline", "row_detail"]

_MAX_LABEL = 30
_MIN_LABEL = 8
_MAX_DETAIL = 48
_MIN_BAR = 10
# Below this many columns of detail beside the bar, details go on a line of their own.
_MIN_DETAIL_BESIDE = 20
_RUN, _WAIT, _MARK = "█", "░", "◆"


@dataclass(frozen=True, slots=True)
class _Layout:
    label: int
    bar: int
    detail: int  # 0: details on their own line
    width: int


def _cut(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def format_ms(value: float) -> str:
    if value < 1:
        return f"{value:.2f} ms"
    if value < 1000:
        return f"{value:.1f} ms"
    if value < 60_000:
        return f"{value / 1000:.2f} s"
    minutes, seconds = divmod(value / 1000, 60)
    return f"{int(minutes)}m{seconds:04.1f}s"


def _label(bar: Bar) -> str:
    return "  " * bar.depth + ("└ " if bar.depth else "") + bar.label


def _layout(rows: list[Bar], width: int) -> _Layout:
    width = max(width, _MIN_LABEL + _MIN_BAR + 2)
    longest = max((len(_label(r)) for r in rows), default=0)
    label = max(_MIN_LABEL, min(longest, _MAX_LABEL, width // 3))
    wanted = min(_MAX_DETAIL, max((len(row_detail(r)) for r in rows), default=0))
    room = width - label - 1 - max(_MIN_BAR, width * 3 // 10) - 1
    if wanted and room >= _MIN_DETAIL_BESIDE:
        detail = min(wanted, room)
        return _Layout(label, width - label - detail - 2, detail, width)
    return _Layout(label, width - label - 1, 0, width)


def _column(at: datetime, timeline: Timeline, columns: int) -> float:
    return timeline.fraction(at) * columns


def _bar(row: Bar, timeline: Timeline, columns: int) -> str:
    cells = [" "] * columns
    if row.instant:
        marks = row.children or [row]
        for mark in marks:
            cells[min(int(_column(mark.start, timeline, columns)), columns - 1)] = _MARK
        return "".join(cells)
    begin = min(int(_column(row.start, timeline, columns)), columns - 1)
    finish = max(begin + 1, round(_column(row.end, timeline, columns)))
    if row.queued_from is not None:
        wait = min(int(_column(row.queued_from, timeline, columns)), begin)
        for i in range(wait, begin):
            cells[i] = _WAIT
    for i in range(begin, min(finish, columns)):
        cells[i] = _RUN
    return "".join(cells)


def _axis(timeline: Timeline, layout: _Layout) -> str:
    """``0`` under the bars' left edge, the goal's duration under their right, the middle
    between when there is room."""
    left, right = "0", format_ms(timeline.duration_ms)
    middle = format_ms(timeline.duration_ms / 2)
    before = layout.bar // 2 - len(left) - len(middle) // 2
    after = layout.bar - len(left) - before - len(middle) - len(right)
    if before >= 2 and after >= 2:
        scale = left + " " * before + middle + " " * after + right
    else:
        scale = left + " " * max(layout.bar - len(left) - len(right), 1) + right
    return " " * layout.label + " " + scale


def headline(timeline: Timeline) -> str:
    """The goal in one line: id, status, duration, tool calls, model calls with tokens, cost."""
    parts = [
        f"goal {timeline.goal_id}",
        timeline.status,
        format_ms(timeline.duration_ms),
        f"{timeline.tool_calls} tool call{'s' if timeline.tool_calls != 1 else ''}",
    ]
    if timeline.llm_calls:
        parts.append(
            f"{timeline.llm_calls} LLM call{'s' if timeline.llm_calls != 1 else ''} "
            f"{timeline.tokens_in}→{timeline.tokens_out} tok ${timeline.cost_usd:.4f}"
        )
    return " · ".join(parts)


def row_detail(row: Bar) -> str:
    """What the row did; a step's own wall time first, a task's tool time after it."""
    if row.kind not in ("plan", "task", "evaluation", "context", "pause", "approval"):
        return row.detail
    took = format_ms(row.duration_ms)
    if row.kind == "task" and row.status not in OPEN_STATUSES:
        attempts = f", {row.attempts} attempts" if row.attempts > 1 else ""
        tool = f", tool {format_ms(row.tool_ms)}" if row.tool_ms is not None else ""
        error = f": {row.error}" if row.error else ""
        return f"{row.status} {took}{attempts}{tool}{error}"
    return f"{row.detail}, {took}" if row.detail else took


def render_timeline(timeline: Timeline, width: int = 100) -> list[str]:
    """The Gantt chart of ``timeline`` in lines of at most ``width`` characters."""
    rows = timeline.rows()
    layout = _layout(rows, width)
    lines = [_cut(headline(timeline), layout.width), _cut(_axis(timeline, layout), layout.width)]
    for row in rows:
        label = _cut(_label(row), layout.label).ljust(layout.label)
        bar = _bar(row, timeline, layout.bar)
        detail = row_detail(row)
        if layout.detail:
            line = f"{label} {bar} {_cut(detail, layout.detail)}".rstrip()
            lines.append(_cut(line, layout.width))
        else:
            lines.append(_cut(f"{label} {bar}".rstrip(), layout.width))
            if detail:
                indent = "  " * (row.depth + 1)
                lines.append(_cut(indent + detail, layout.width))
    return lines
