"""The projector: tails AGORA_EVENTS into its DuckDB file and answers read-only SQL over NATS.

Its position in the stream is the checkpoint inside its DuckDB file, written in the same
transaction as the rows, so it needs no durable consumer: on start it reads on from the
checkpoint through an ephemeral one. Several projector replicas (each with its own file) share
``agora.query`` through the queue group ``projector``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path

import msgspec
from nats.aio.msg import Msg

from events.subjects import EVENTS_STREAM, QUERY_SUBJECT
from infra.bus.reader import StreamReader
from infra.bus.replies import subscribe_requests
from infra.logging import get_logger
from infra.platform.runner import ServiceContext, ServiceParts
from infra.settings import Settings
from projections.guard import QueryRefused, run_query
from projections.pipeline import OrderedApplier
from projections.protocol import (
    PROJECTOR_CONTROL,
    QUERY_GROUP,
    QueryReply,
    decode_request,
    encode,
)
from projections.store import ProjectionStore

__all__ = ["Projector", "build", "database_path", "linger_after"]

log = get_logger("agora.projector")
MAX_CONCURRENT_QUERIES = 4
# How long a tailing read gathers new events before they are written. Every batch pays a fixed
# ~50-75 ms of DuckDB planning and commit on a 2-core box however few events it holds (the
# planner binds each of the five statements afresh), so at the reader's default 0.1 s a trickle
# of events kept the projector busy ~40% of a core. 0.5 s bounds that to two batches a second;
# views trail the log by up to half a second more. A backlog is read in full batches, unslowed.
TAIL_LINGER_S = 0.5
# Under load (a batch that gathered this many events) the fixed cost is still most of a
# batch's CPU, so the next batch gathers twice as long: half the batches a second, views
# trailing by up to a second. A trickle keeps the short linger.
BUSY_BATCH_EVENTS = 2_500
BUSY_LINGER_S = 1.0


def linger_after(events: int) -> float:
    """How long the next tailing batch gathers, after one of ``events`` events."""
    return BUSY_LINGER_S if events >= BUSY_BATCH_EVENTS else TAIL_LINGER_S


def database_path(settings: Settings) -> Path:
    return settings.data_dir / "projections" / "agora.duckdb"


class Projector:
    """Applies raw event batches in order; answers queries meanwhile on other threads."""

    def __init__(self, ctx: ServiceContext, store: ProjectionStore) -> None:
        self.ctx = ctx
        self.store = store
        self.applied_seq = store.last_seq()
        # Queries never touch the connection batches are written on (DuckDB refuses a busy
        # connection rather than wait): each takes a cursor of this parent, which runs nothing.
        self._query_parent = store.connection.cursor()
        self._cursor_lock = threading.Lock()
        self._rebuild = asyncio.Event()
        self._queries = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)
        self._tasks: set[asyncio.Task[None]] = set()
        self._progress = asyncio.Event()  # replaced by a fresh one each time applied_seq moves

    # -- projecting ----------------------------------------------------------------------

    async def project(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._tail(stop)
            except Exception as exc:
                log.exception(
                    "projector_failed_will_resume", error=repr(exc), at_seq=self.applied_seq
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _tail(self, stop: asyncio.Event) -> None:
        reader = await StreamReader(
            self.ctx.nc,
            EVENTS_STREAM,
            "agora.events.>",
            start_seq=self.applied_seq + 1,
            batch=self.ctx.settings.projector_batch,
            linger_s=TAIL_LINGER_S,
        ).open()
        applier = OrderedApplier(self.store.apply_raw)
        try:
            unflushed = False
            while not stop.is_set() and not self._rebuild.is_set():
                batch = await reader.next_batch(wait=True)
                reader.linger_s = linger_after(len(batch))
                # The views hold large outputs themselves, as if written inline.
                payloads = await self.ctx.outputs.inline_payloads(batch.payloads)
                await applier.submit(batch.seqs, payloads)
                self._advance(applier.applied_seq)
                if batch.seqs:
                    unflushed = True
                elif unflushed:
                    # Idle: fold DuckDB's write-ahead log into the file now, rather than let
                    # an automatic checkpoint stall a commit (0.7-1.4 s) in the middle of load.
                    await applier.flush()
                    await asyncio.to_thread(self.store.checkpoint)
                    unflushed = False
            await applier.flush()
            self._advance(applier.applied_seq)
        finally:
            await reader.close()
        if self._rebuild.is_set():
            await asyncio.to_thread(self.store.reset)
            self.applied_seq = 0
            self._rebuild.clear()
            log.warning("projection_rebuild_started")

    def _advance(self, seq: int) -> None:
        if seq > self.applied_seq:
            self.applied_seq = seq
            self._progress.set()
            self._progress = asyncio.Event()

    async def _reached(self, seq: int, timeout_s: float) -> bool:
        """Whether the views include stream sequence ``seq`` within ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.applied_seq < seq:
                    await self._progress.wait()
        return self.applied_seq >= seq

    def close(self) -> None:
        self._query_parent.close()
        self.store.close()

    # -- answering -----------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        nc = self.ctx.nc
        queries = await subscribe_requests(nc, QUERY_SUBJECT, self._on_query, queue=QUERY_GROUP)
        control = await subscribe_requests(nc, PROJECTOR_CONTROL, self._on_control)
        try:
            await stop.wait()
        finally:
            await queries.unsubscribe()
            await control.unsubscribe()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.ctx.settings.drain_timeout_s)

    async def _on_query(self, msg: Msg) -> None:
        # One task per query: a slow query never holds up the next one.
        task = asyncio.ensure_future(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        min_seq = _min_seq(msg.data)
        timeout_s = self.ctx.settings.query_timeout_s
        if min_seq > self.applied_seq and not await self._reached(min_seq, timeout_s):
            if msg.reply:
                await msg.respond(
                    encode(
                        QueryReply(
                            error=f"the views reached stream sequence {self.applied_seq}, not "
                            f"min_seq {min_seq}, within {timeout_s}s: ask again shortly",
                            last_seq=self.applied_seq,
                        )
                    )
                )
            return
        async with self._queries:
            try:
                reply = await asyncio.to_thread(self._run, msg.data)
            except Exception as exc:
                # Whatever went wrong, the asker gets an answer, not a timeout.
                log.exception("query_failed")
                reply = QueryReply(error=f"the query failed: {exc}", last_seq=self.applied_seq)
        data = encode(reply)
        if len(data) > self.ctx.nc.max_payload:
            data = encode(
                QueryReply(
                    error=f"the result is {len(data)} bytes, over the {self.ctx.nc.max_payload}"
                    " byte message limit: select fewer columns or rows",
                    refused=True,
                    last_seq=reply.last_seq,
                )
            )
        if msg.reply:
            await msg.respond(data)

    def _run(self, data: bytes) -> QueryReply:
        settings = self.ctx.settings
        try:
            request = decode_request(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return QueryReply(error=f"not a query request: {exc}", refused=True)
        with self._cursor_lock:
            connection = self._query_parent.cursor()
        try:
            result = run_query(
                connection,
                request.sql,
                max_rows=max(1, min(request.max_rows, settings.query_max_rows)),
                timeout_s=settings.query_timeout_s,
                params=request.params,
            )
        except QueryRefused as exc:
            return QueryReply(error=str(exc), refused=True, last_seq=self.applied_seq)
        finally:
            connection.close()
        return QueryReply(
            columns=list(result.columns),
            rows=[list(row) for row in result.rows],
            truncated=result.truncated,
            elapsed_ms=result.elapsed_ms,
            last_seq=self.applied_seq,
        )

    async def _on_control(self, msg: Msg) -> None:
        action = msg.data.decode(errors="replace").strip()
        if action == "rebuild":
            self._rebuild.set()
        elif action != "status":
            await msg.respond(encode({"error": f"unknown action {action!r}: status | rebuild"}))
            return
        await msg.respond(
            encode({"last_seq": self.applied_seq, "rebuilding": self._rebuild.is_set()})
        )


def _min_seq(data: bytes) -> int:
    """The request's ``min_seq``; 0 when the request is malformed (``_run`` says why)."""
    with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
        return max(0, decode_request(data).min_seq)
    return 0


def build(ctx: ServiceContext) -> ServiceParts:
    path = database_path(ctx.settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = ProjectionStore.open(path, memory_limit=ctx.settings.query_memory_limit)
    projector = Projector(ctx, store)

    async def close() -> None:
        projector.close()

    return ServiceParts([], on_stop=close, tasks=[projector.project, projector.serve])
