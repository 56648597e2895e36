"""Answers go to the requester's inbox and nowhere else.

A request's reply subject is chosen by whoever sends the request. Left unchecked, a client
could name ``agora.events.<goal>.goal_failed`` (or a dead-letter or JetStream API subject) as
its reply, and the service's answer would be stored in the log or act on the bus with the
service's own rights. Every request a service serves therefore passes through
:func:`inbox_replies_only` first: a request whose reply is not an inbox
(:func:`events.subjects.is_inbox_reply`) is dropped and logged, never answered, never acted
on. :class:`InboxOnlyClient` applies the same rule to the handlers ``nats.micro`` subscribes
for ``$SRV.PING|INFO|STATS``.

The server configuration is the second wall (infra/platform/auth.py): service identities no
longer get ``allow_responses``, only an explicit right to publish onto inbox prefixes, so
even an unguarded handler cannot answer onto a subject its identity does not own. And the
client identity lives in an account of its own, so its requests reach a service with a reply
the server chose (``_R_.…``), which is why those count as inboxes here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from events.subjects import is_inbox_reply
from infra.logging import get_logger

__all__ = ["InboxOnlyClient", "inbox_replies_only", "subscribe_requests"]

log = get_logger("agora.replies")

MessageHandler = Callable[[Msg], Awaitable[None]]


def inbox_replies_only(handler: MessageHandler) -> MessageHandler:
    """``handler``, refusing every request whose reply subject is not an inbox."""

    async def guarded(msg: Msg) -> None:
        if msg.reply and not is_inbox_reply(msg.reply):
            log.warning("request_refused_reply_not_inbox", subject=msg.subject, reply=msg.reply)
            return
        await handler(msg)

    return guarded


async def subscribe_requests(
    nc: NatsClient, subject: str, handler: MessageHandler, *, queue: str = ""
) -> Subscription:
    """Serve requests on ``subject``: answers only ever go to the requester's inbox."""
    return await nc.subscribe(subject, queue=queue, cb=inbox_replies_only(handler))


class InboxOnlyClient:
    """A NATS client whose subscriptions with a callback refuse non-inbox replies.

    Handed to ``nats.micro.add_service`` in place of the connection, so the library's own
    ``$SRV`` handlers obey the same rule as ours. Everything else is the real client.
    """

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc

    async def subscribe(
        self, subject: str, queue: str = "", cb: MessageHandler | None = None, **kwargs: Any
    ) -> Subscription:
        guarded = inbox_replies_only(cb) if cb is not None else None
        return await self._nc.subscribe(subject, queue=queue, cb=guarded, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._nc, name)
