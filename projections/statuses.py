"""The values of the views' status columns, for filters that offer them (no imports: the CLI
and the dashboard read them at start)."""

from __future__ import annotations

__all__ = ["GOAL_STATUSES"]

# Every value of ``goals.status`` (projections/derive.py), in a goal's order of life.
GOAL_STATUSES = (
    "queued",
    "running",
    "waiting_approval",
    "paused",
    "completed",
    "failed",
    "rejected",
    "cancelled",
)
