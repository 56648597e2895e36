"""Composition root of memory: the follower's read model, the decisions, the adapters.

Every replica follows the log into its own index (``IndexFollower``): completed tasks become
observations there, published as nothing. Inputs (durable consumer ``memory``, shared by the
replicas): ``context_requested`` (a model is about to plan) and forget commands from
``agora.intake.memory.forget``. What the followed log calls for (a compaction of a goal's
working memory, the lessons of a goal completed after revisions) is decided by every replica
alike and written guarded on its subject, so exactly one copy is stored. Reads:
``agora.memory.query`` (queue group ``memory``) answers search, stats and working-memory
requests.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
from nats.aio.msg import Msg

from events.catalog import ContextRequested, GoalCompleted
from events.memory_commands import parse_forget_command
from events.model import Event, Stamp
from events.subjects import EVENTS_STREAM, INTAKE_STREAM, event_subject, goal_id_from_subject
from infra.bus.consume import Delivery
from infra.bus.history import last_on_subject
from infra.bus.publisher import Fence, FenceRefusedError
from infra.bus.replies import subscribe_requests
from infra.bus.snapshots import MEMORY_SNAPSHOTS, SnapshotStore
from infra.logging import get_logger
from infra.platform.runner import ServiceContext, ServiceParts, Subscription
from infra.retrieval.embeddings import HttpEmbedder
from infra.retrieval.vectors import VectorStore
from services.memory.decide import (
    UNATTRIBUTED_GOAL,
    compaction,
    forget,
    learn_lessons,
    provide_context,
)
from services.memory.follower import IndexFollower
from services.memory.longterm import Item, SearchFilter
from services.memory.ports import ExtractiveSummarizer, Summarizer
from services.memory.protocol import (
    MEMORY_QUERY,
    MEMORY_QUERY_GROUP,
    MemoryReply,
    MemoryRequest,
    decode_request,
    encode,
)
from services.memory.working import GoalWorkingMemory, plan_compaction

__all__ = ["DenseRetrieval", "MemoryService", "build"]

log = get_logger("agora.memory")
# How long a decision waits for the read model to reach what it must see (then it is retried).
CATCH_UP_TIMEOUT_S = 10.0
MAX_K = 100
DENSE_CANDIDATES = 50
FORGET_CONCURRENCY = 8
# When nothing moves, due decisions are looked at again this often.
IDLE_DECISIONS_S = 5.0


class DenseRetrieval:
    """Embeds what memory stores and ranks items by cosine similarity to a query.

    Best effort: if the endpoint fails, items wait to be embedded with the next batch, and
    searches rank lexically (BM25) alone rather than fail.
    """

    def __init__(
        self, embedder: HttpEmbedder, vectors: VectorStore, follower: IndexFollower
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self._follower = follower
        self._waiting: dict[str, str] = {}  # content hash -> text, not embedded yet

    async def items_added(self, items: list[Item]) -> None:
        for item in items:
            self._waiting[item.content_hash] = item.text
        missing = await asyncio.to_thread(self._vectors.missing, list(self._waiting))
        if not missing:
            self._waiting.clear()
            return
        try:
            vectors = await self._embedder.embed([self._waiting[h] for h in missing])
            await asyncio.to_thread(self._vectors.add, missing, vectors)
        except Exception as exc:
            log.warning("memory_embedding_failed", error=repr(exc), waiting=len(missing))
            return
        self._waiting.clear()

    async def rank(self, query: str) -> list[int] | None:
        """Item ids by similarity to ``query``, best first; None if the endpoint failed."""
        try:
            [vector] = await self._embedder.embed([query])
        except Exception as exc:
            log.warning("memory_query_embedding_failed", error=repr(exc))
            return None
        hashes = await asyncio.to_thread(self._vectors.nearest, vector, DENSE_CANDIDATES)
        ltm = self._follower.state.long_term
        return [item.item_id for h in hashes if (item := ltm.item_for_hash(h)) is not None]

    async def vector_count(self) -> int:
        return await asyncio.to_thread(len, self._vectors)

    async def close(self) -> None:
        await self._embedder.close()
        self._vectors.close()


class MemoryService:
    """The memory service's handlers, over one follower (the read model) and its ports."""

    def __init__(self, ctx: ServiceContext, summarizer: Summarizer | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.summarizer: Summarizer = summarizer or ExtractiveSummarizer()
        self.dense: DenseRetrieval | None = None
        self._log_moved = asyncio.Event()
        self.follower = IndexFollower(
            ctx.nc,
            snapshot_every=self.settings.memory_snapshot_every,
            items_added=self._added,
            applied=self._log_moved.set,
            resolve=ctx.outputs.resolve,
        )
        # Goals whose lessons this replica tried to write since it started (once each).
        self._lessons_tried: set[str] = set()
        if self.settings.embeddings_url:
            path = self.settings.data_dir / "memory" / "vectors.duckdb"
            vectors = VectorStore(path, self.settings.embeddings_model)
            self.dense = DenseRetrieval(HttpEmbedder(self.settings), vectors, self.follower)

    async def _added(self, items: list[Item]) -> None:
        if self.dense is not None:
            await self.dense.items_added(items)

    async def start(self) -> None:
        self.follower.snapshots = await SnapshotStore.open(
            self.ctx.js, self.settings, MEMORY_SNAPSHOTS
        )
        await self.follower.load()

    async def stop(self) -> None:
        if self.dense is not None:
            await self.dense.close()

    async def _dense_rank(self, query: str) -> list[int] | None:
        return await self.dense.rank(query) if self.dense is not None else None

    # -- the log's events ------------------------------------------------------------------

    async def provide(self, event: Event, delivery: Delivery) -> None:
        del delivery
        assert isinstance(event, ContextRequested)
        stamp = Stamp.caused_by(event, producer=self.ctx.producer, now=self.ctx.now())
        # Everything stored before the request must be there to be recalled.
        await self.follower.wait_current(CATCH_UP_TIMEOUT_S)
        ranked = await self._dense_rank(event.query)
        context = provide_context(self.follower.state.long_term, event, stamp, dense=ranked)
        await self.ctx.publish([context])

    # -- what the followed log calls for -----------------------------------------------------

    async def decide_from_log(self, stop: asyncio.Event) -> None:
        """Take the decisions the index says are due, whenever the follower moved on."""
        # Being told to stop wakes the wait too, so stopping does not sit out an idle wait.
        stopped = asyncio.ensure_future(stop.wait())
        stopped.add_done_callback(lambda _: self._log_moved.set())
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._log_moved.wait(), IDLE_DECISIONS_S)
                self._log_moved.clear()
                if stop.is_set():
                    return
                try:
                    await self._decide_due()
                except Exception as exc:
                    # A failed write is tried again when the log next moves (or after a while).
                    log.warning("memory_decision_failed_will_retry", error=repr(exc))
                    self._lessons_tried.clear()
        finally:
            stopped.cancel()

    async def _decide_due(self) -> None:
        state = self.follower.state
        for goal_id in sorted(state.take_touched()):
            await self._compact_if_over_budget(goal_id)
        for goal_id in sorted(set(state.lessons_due) - self._lessons_tried):
            self._lessons_tried.add(goal_id)
            await self._write_lessons(goal_id)

    async def _compact_if_over_budget(self, goal_id: str) -> None:
        budget = self.settings.memory_working_tokens
        state = self.follower.state
        plan = plan_compaction(state.working_memory(goal_id), budget)
        if plan is None:
            return
        summary = await self.summarizer.summarize(
            plan.previous_summary, plan.texts, plan.summary_budget
        )
        stamp = Stamp(
            producer=self.ctx.producer,
            goal_id=goal_id,
            occurred_at=self.ctx.now(),
            causation_id=None,
            correlation_id=goal_id,
        )
        event = compaction(plan, summary, self.summarizer.method, budget, stamp)
        # Stored only if no other compaction of the goal came first (another replica's, or a
        # newer one): the follower folds whichever won, and the goal is looked at again.
        guard = Fence(
            state.compaction_seq.get(goal_id, 0), event_subject(goal_id, "memory_compacted")
        )
        with contextlib.suppress(FenceRefusedError):
            await self.ctx.publish([event], fence=guard)

    async def _write_lessons(self, goal_id: str) -> None:
        history = await self.ctx.goal_log.load(goal_id)
        completed = next((e for e in history if isinstance(e, GoalCompleted)), None)
        if completed is None:
            return
        stamp = Stamp.caused_by(completed, producer=self.ctx.producer, now=self.ctx.now())
        lessons = learn_lessons(history, completed, stamp)
        subject = event_subject(goal_id, "memory_stored")
        last = await last_on_subject(self.ctx.nc, subject)
        if last is not None and last[1] == "lesson":
            return  # another replica wrote them
        seq = last[0] if last is not None else 0
        for lesson in lessons:
            # Each lesson only right after the previous one: a second writer is refused.
            try:
                [ack] = await self.ctx.publish([lesson], fence=Fence(seq, subject))
            except FenceRefusedError:
                return
            seq = ack.seq

    async def on_forget(self, delivery: Delivery) -> None:
        command = parse_forget_command(delivery.data)  # DecodeError: to the DLQ, with why
        await self.follower.wait_current(CATCH_UP_TIMEOUT_S)
        goal_id = command.goal_id or UNATTRIBUTED_GOAL
        stamp = Stamp(
            producer=self.ctx.producer,
            goal_id=goal_id,
            occurred_at=self.ctx.now(),
            causation_id=None,
            correlation_id=goal_id,
        )
        event = forget(self.follower.state.long_term, command, stamp)
        await self.ctx.publish([event])
        log.info("memory_forget", key=event.key, goal_id=event.goal_id)

    # -- direct reads (agora.memory.query) ---------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        sub = await subscribe_requests(
            self.ctx.nc, MEMORY_QUERY, self._on_request, queue=MEMORY_QUERY_GROUP
        )
        try:
            await stop.wait()
        finally:
            await sub.unsubscribe()

    async def _on_request(self, msg: Msg) -> None:
        try:
            reply = await self.answer(decode_request(msg.data))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            reply = MemoryReply(error=f"not a memory request: {exc}")
        except Exception as exc:
            log.exception("memory_request_failed")
            reply = MemoryReply(error=f"the memory request failed: {exc!r}")
        if msg.reply:
            await msg.respond(encode(reply))

    async def answer(self, request: MemoryRequest) -> MemoryReply:
        state = self.follower.state
        if request.op == "stats":
            stats = {
                **state.stats(),
                "snapshot_seq": self.follower.snapshot_seq,
                "replayed_at_start": self.follower.replayed_at_start,
                "retrieval": "hybrid (bm25 + dense, rrf)" if self.dense else "bm25",
                "vectors": await self.dense.vector_count() if self.dense else 0,
            }
            return MemoryReply(stats=stats)
        if request.op == "working":
            if not request.goal_id:
                return MemoryReply(error="a working-memory request names a goal_id")
            return MemoryReply(working=self.working_view(request.goal_id))
        where = SearchFilter(
            goal_id=request.goal_id,
            kinds=request.kinds,
            metadata=request.metadata,
            since=request.since,
            until=request.until,
        )
        ranked = await self._dense_rank(request.query)
        k = max(1, min(request.k, MAX_K))
        now = request.as_of or self.ctx.now()
        return MemoryReply(
            items=state.long_term.search(request.query, k, where=where, now=now, dense=ranked)
        )

    def working_view(self, goal_id: str) -> dict[str, Any]:
        wm = self.follower.state.working.get(goal_id) or GoalWorkingMemory()
        return {
            "goal_id": goal_id,
            "budget": self.settings.memory_working_tokens,
            "tokens": wm.tokens,
            "summary": wm.summary,
            "compactions": wm.compactions,
            "compacted_through": wm.compacted_through,
            "observed": wm.next_ordinal,
            "observations": [
                {"ordinal": o.ordinal, "key": o.key, "text": o.text, "tokens": o.tokens}
                for o in wm.observations
            ],
        }


def per_goal(delivery: Delivery) -> str | None:
    return goal_id_from_subject(delivery.subject)


def build(ctx: ServiceContext) -> ServiceParts:
    service = MemoryService(ctx)
    return ServiceParts(
        [
            Subscription(
                ctx.spec(EVENTS_STREAM),
                ctx.routed(EVENTS_STREAM, {ContextRequested: service.provide}),
                ctx.settings.concurrency,
                per_goal,
            ),
            Subscription(ctx.spec(INTAKE_STREAM), service.on_forget, FORGET_CONCURRENCY),
        ],
        on_start=service.start,
        on_stop=service.stop,
        tasks=[service.follower.follow, service.serve, service.decide_from_log],
    )
