"""The dashboard's Starlette app: each route reads through ``agora.query`` or the event stream
(never the projection's file), renders with :mod:`infra.dashboard.pages`, and answers.

Routes: ``/goals`` (filters, search, keyset pages; ``/goals/rows`` is the table's live part,
``/api/goals`` the same as JSON), ``/goals/{id}`` (timeline, plan, facts, memory context),
``/approvals`` (``/approvals/rows`` its live part, ``POST /approvals/answer`` an answer, sent
on ``agora.intake.approval`` as the CLI sends it), ``/analytics``, ``/dlq`` and ``/dlq/{id}``
(show, ``POST …/retry``), with SSE at ``/goals/stream`` and ``/goals/{id}/stream``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from nats.aio.client import Client as NatsClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from events.catalog import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    MemoryStored,
    TaskCompleted,
)
from events.errors import AgoraError
from events.subjects import is_subject_token
from infra.clients.goals import AgoraClient, CommandTimeoutError, is_terminal
from infra.dashboard import pages
from infra.dashboard.answers import MAX_ANSWER_BYTES, BadAnswerError, parse_answer
from infra.dashboard.auth import Access, DashboardGuard
from infra.dashboard.live import GoalsHub, follow_goal, goals_changes, sse
from infra.dashboard.picture import picture_of
from infra.dashboard.queries import (
    ANALYTICS,
    BadFilterError,
    Cursor,
    GoalFilter,
    Statement,
    facts_statement,
    goal_row_statement,
    goals_page_statement,
    parse_filter,
    status_counts_statement,
    waiting_approvals_statement,
)

__all__ = ["Dashboard", "build_app"]

_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_SSE_HEADERS = {**_HEADERS, "X-Accel-Buffering": "no"}
# What moves a goal page's approvals section.
_APPROVAL_EVENTS = (ApprovalRequested, ApprovalGranted, ApprovalDenied)


@dataclass
class Dashboard:
    """What the routes read through: the client connection, the goals hub, and (for retries,
    an operator's act) a connection as the admin identity, opened when first needed."""

    client: AgoraClient
    hub: GoalsHub
    operator: Callable[[], Awaitable[NatsClient]]
    goals_interval_s: float = 1.0
    goal_interval_s: float = 0.25
    answer_timeout_s: float = 10.0
    _operator_nc: NatsClient | None = field(default=None, repr=False)

    async def rows(self, statement: Statement, *, min_seq: int = 0) -> list[dict[str, Any]]:
        reply = await self.client.query(
            statement.sql, params=statement.params, min_seq=min_seq, timeout_s=10.0
        )
        return [dict(zip(reply.columns, row, strict=True)) for row in reply.rows]

    async def operator_nc(self) -> NatsClient:
        if self._operator_nc is None or self._operator_nc.is_closed:
            self._operator_nc = await self.operator()
        return self._operator_nc

    async def close(self) -> None:
        await self.hub.stop()
        if self._operator_nc is not None:
            await self._operator_nc.close()


def _html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=_HEADERS)


def _failed(exc: AgoraError, *, html: bool = True) -> Response:
    if html:
        return _html(pages.error_page("The platform did not answer", str(exc)), 503)
    return JSONResponse({"error": str(exc)}, status_code=503, headers=_HEADERS)


async def _goals_page(
    dashboard: Dashboard, goal_filter: GoalFilter, *, min_seq: int = 0
) -> tuple[list[dict[str, Any]], Cursor | None]:
    rows = await dashboard.rows(goals_page_statement(goal_filter), min_seq=min_seq)
    more = None
    if len(rows) > goal_filter.limit:
        rows = rows[: goal_filter.limit]
        last = rows[-1]
        more = Cursor(str(last["submitted_at"]), str(last["goal_id"]))
    return rows, more


def build_app(dashboard: Dashboard, access: Access) -> DashboardGuard:  # noqa: PLR0915
    """Every route behind :class:`DashboardGuard` (a token when one is required)."""

    def goal_filter_of(request: Request) -> GoalFilter:
        return parse_filter(dict(request.query_params))

    async def goals(request: Request) -> Response:
        try:
            goal_filter = goal_filter_of(request)
        except BadFilterError as exc:
            return _html(pages.error_page("Not a filter", str(exc)), 400)
        try:
            rows, more = await _goals_page(dashboard, goal_filter)
            counts = {
                str(r["status"]): int(r["goals"])
                for r in await dashboard.rows(status_counts_statement(goal_filter))
            }
        except AgoraError as exc:
            return _failed(exc)
        return _html(pages.goals_page(rows, goal_filter, counts, more=more))

    async def goal_rows(request: Request) -> Response:
        try:
            goal_filter = goal_filter_of(request)
            rows, more = await _goals_page(dashboard, goal_filter, min_seq=_min_seq(request))
        except BadFilterError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        except AgoraError as exc:
            return _failed(exc, html=False)
        return _html(pages.goal_rows(rows, goal_filter, more=more))

    async def api_goals(request: Request) -> Response:
        try:
            goal_filter = goal_filter_of(request)
            rows, more = await _goals_page(dashboard, goal_filter)
        except BadFilterError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=_HEADERS)
        except AgoraError as exc:
            return _failed(exc, html=False)
        body = {"goals": rows, "next": more.encode() if more else None}
        return JSONResponse(body, headers=_HEADERS)

    async def goals_stream(_request: Request) -> Response:
        hub = dashboard.hub
        changes = goals_changes(hub, since=hub.version, interval_s=dashboard.goals_interval_s)
        return StreamingResponse(changes, media_type="text/event-stream", headers=_SSE_HEADERS)

    async def facts_html(goal_id: str, *, min_seq: int = 0) -> str:
        rows = await dashboard.rows(facts_statement(goal_id), min_seq=min_seq)
        columns = ("key", "kind", "value", "importance", "recorded_at")
        return pages.table(
            columns,
            [[r[c] if c != "value" else str(r[c])[:300] for c in columns] for r in rows],
            empty="no facts recorded yet",
        )

    async def approvals_html(goal_id: str | None = None, *, min_seq: int = 0) -> str:
        rows = await dashboard.rows(waiting_approvals_statement(goal_id=goal_id), min_seq=min_seq)
        return pages.approvals_list(rows, show_goal=goal_id is None)

    async def goal(request: Request) -> Response:
        goal_id = request.path_params["goal_id"]
        if not is_subject_token(goal_id):
            return _html(pages.error_page("No such goal", "a goal id is one subject token"), 404)
        try:
            recorded = await dashboard.client.recorded(goal_id)
            found = await dashboard.rows(goal_row_statement(goal_id))
            facts = await facts_html(goal_id)
            approvals = await approvals_html(goal_id)
        except AgoraError as exc:
            return _failed(exc)
        if not recorded and not found:
            return _html(pages.error_page("No such goal", f"no events for {goal_id}"), 404)
        picture = picture_of(goal_id, (event for _, event in recorded))
        row = found[0] if found else None
        drawn_from = recorded[-1][0] if recorded else 0
        return _html(
            pages.goal_page(
                goal_id, row, picture, facts, approvals=approvals, drawn_from=drawn_from
            )
        )

    async def goal_stream(request: Request) -> Response:
        goal_id = request.path_params["goal_id"]
        if not is_subject_token(goal_id):
            return PlainTextResponse("a goal id is one subject token", status_code=404)
        messages = _goal_messages(goal_id, drawn_from=_min_seq(request, "seen"))
        return StreamingResponse(messages, media_type="text/event-stream", headers=_SSE_HEADERS)

    async def _goal_messages(goal_id: str, *, drawn_from: int) -> AsyncIterator[str]:
        """The goal's redraws, from its first event; none until the stream has replayed what
        the page was drawn from (``drawn_from``), so a page never steps back to an older
        picture while the history replays."""
        events: list[Any] = []
        yield "retry: 2000\n\n"
        feed = follow_goal(dashboard.client, goal_id, interval_s=dashboard.goal_interval_s)
        async for batch in feed:
            if batch is None:
                yield ": keep-alive\n\n"
                continue
            if batch.deltas:
                yield sse("delta", batch.deltas)
            if not batch.events:
                continue
            events += batch.events
            if batch.last_seq < drawn_from:
                continue
            picture = picture_of(goal_id, events)
            status = picture.timeline.status if picture.timeline else "running"
            yield sse(
                "goal",
                {
                    "timeline": pages.timeline_section(picture),
                    "plan": pages.plan_section(picture),
                    "context": pages.context_section(picture),
                    "status": status,
                    "events": len(events),
                    "last_seq": batch.last_seq,
                },
            )
            if any(isinstance(e, _APPROVAL_EVENTS) or is_terminal(e) for e in batch.events):
                with contextlib.suppress(AgoraError):  # the views lag: the next batch says
                    html = await approvals_html(goal_id, min_seq=batch.last_seq)
                    yield sse("approvals", {"html": html})
            if any(
                isinstance(e, TaskCompleted | MemoryStored) or is_terminal(e) for e in batch.events
            ):
                with contextlib.suppress(AgoraError):  # the views lag: the next batch says
                    yield sse("facts", {"html": await facts_html(goal_id, min_seq=batch.last_seq)})

    async def approvals(_request: Request) -> Response:
        try:
            listing = await approvals_html()
        except AgoraError as exc:
            return _failed(exc)
        return _html(pages.approvals_page(listing))

    async def approval_rows(request: Request) -> Response:
        try:
            return _html(await approvals_html(min_seq=_min_seq(request)))
        except AgoraError as exc:
            return _failed(exc, html=False)

    async def answer_approval(request: Request) -> Response:
        """Send the page's answer on the intake, as ``agora approve``/``deny`` do, and say what
        the planner decided: 200 granted or denied, 409 rejected (with the reason), 400 an
        answer not sent, 504 no decision in time (the answer is recorded all the same)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                break
        try:
            answer = parse_answer(body)
        except BadAnswerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400, headers=_HEADERS)
        client = dashboard.client
        try:
            sent = await client.answer_approval(
                answer.approval_id,
                answer.decision,
                reason=answer.reason,
                args=answer.args,
                by=answer.by,
            )
            decided = await client.answer(sent, timeout_s=dashboard.answer_timeout_s)
        except CommandTimeoutError as exc:
            return JSONResponse({"error": str(exc)}, status_code=504, headers=_HEADERS)
        except AgoraError as exc:
            return _failed(exc, html=False)
        from events.model import event_type
        from events.summary import summarize

        result = {"decision": event_type(decided), "summary": summarize(decided)}
        if isinstance(decided, ApprovalRejected):
            result["error"] = decided.reason
            return JSONResponse(result, status_code=409, headers=_HEADERS)
        return JSONResponse(result, headers=_HEADERS)

    async def analytics(_request: Request) -> Response:
        try:
            data = {name: await dashboard.rows(st) for name, st in ANALYTICS.items()}
        except AgoraError as exc:
            return _failed(exc)
        return _html(pages.analytics_page(data))

    async def dead_letters(_request: Request) -> Response:
        from infra.clients.dead_letters import describe, list_dead_letters

        try:
            records = await list_dead_letters(dashboard.client.nc)
        except AgoraError as exc:
            return _failed(exc)
        return _html(pages.dead_letters_page([describe(r) for r in reversed(records)]))

    async def dead_letter(request: Request) -> Response:
        from infra.clients.dead_letters import (
            DeadLetterError,
            describe,
            get_dead_letter,
            hexdump,
        )

        seq = _record_id(request)
        if seq is None:
            return _html(pages.error_page("No such dead letter", "an id is a number"), 404)
        try:
            stored = await get_dead_letter(dashboard.client.nc, seq)
        except DeadLetterError as exc:
            return _html(pages.error_page("No such dead letter", str(exc)), 404)
        detail = describe(stored, full=True)
        text = detail.pop("data_text", None)
        data = stored.letter.data if stored.letter is not None else b""
        original = [text] if text is not None else hexdump(data)
        detail.pop("data_b64", None)
        return _html(pages.dead_letter_page(detail, original))

    async def retry(request: Request) -> Response:
        from infra.clients.dead_letters import DeadLetterError, redrive

        seq = _record_id(request)
        if seq is None:
            return JSONResponse({"error": "an id is a number"}, status_code=404)
        try:
            result = await redrive(await dashboard.operator_nc(), seq)
        except DeadLetterError as exc:
            return JSONResponse({"error": str(exc)}, status_code=409, headers=_HEADERS)
        except AgoraError as exc:
            return JSONResponse(
                {"error": f"retrying needs the operator's connection: {exc}"},
                status_code=503,
                headers=_HEADERS,
            )
        body = {
            "id": result.record_seq,
            "consumer": result.consumer,
            "copy_seq": result.copy_seq,
            "already": result.already,
        }
        return JSONResponse(body, headers=_HEADERS)

    async def login_form(request: Request) -> Response:
        return _html(pages.login_page(then=request.query_params.get("then", "/goals")))

    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=4)
        answer = access.login(str(form.get("token", "")), str(form.get("then", "/goals")))
        answer.headers.update(_HEADERS)
        return answer

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return PlainTextResponse("not found", status_code=404)
        body = resources.files("infra.dashboard").joinpath("static", name).read_bytes()
        return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    async def home(_request: Request) -> Response:
        return RedirectResponse("/goals", status_code=303)

    routes = [
        Route("/", home),
        Route("/goals", goals),
        Route("/goals/rows", goal_rows),
        Route("/goals/stream", goals_stream),
        Route("/api/goals", api_goals),
        Route("/goals/{goal_id}", goal),
        Route("/goals/{goal_id}/stream", goal_stream),
        Route("/approvals", approvals),
        Route("/approvals/rows", approval_rows),
        Route("/approvals/answer", answer_approval, methods=["POST"]),
        Route("/analytics", analytics),
        Route("/dlq", dead_letters),
        Route("/dlq/{seq}", dead_letter),
        Route("/dlq/{seq}/retry", retry, methods=["POST"]),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/static/{name}", static),
    ]
    return DashboardGuard(Starlette(routes=routes), access=access)


def _min_seq(request: Request, name: str = "min_seq") -> int:
    """A log sequence the page names (a refresh's ``min_seq``, what a goal page was drawn
    from); 0 when absent or not a number."""
    raw = request.query_params.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else 0


def _record_id(request: Request) -> int | None:
    raw = str(request.path_params["seq"])
    return int(raw) if raw.isdigit() and len(raw) < 19 else None
