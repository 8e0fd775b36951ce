"""The live oversight stream: one socket per page or API client, fed by its tenant's group.

Frames sent to the client (JSON):
- ``{"type": "hello", "seq": n}`` once, right after accept: the latest sequence number;
- each event the user may see: ``{"type": "task.state" | "task.step" | "approval.requested" …,
  "seq": n, "agent_id": …, …}``;
- ``{"type": "resync", "seq": n}`` when the group skipped a number (the channel layer may drop
  messages): the client refetches what it shows.

Events of agents outside the user's reach are left out (``governance.access``): the agents the
user may see, and for approval events (requested, assigned, released, reminder, breached,
decided) the agents they may review. An event that concerns no agent is forwarded only when it
is about the whole tenant (``usage.*``, e.g. ``usage.near_limit``) and the user may view.

Each user's reach is read once, when the socket opens; the frame is encoded once per event by
its sender (``agents.events``); and the sockets of one process share one subscription to their
tenant's group (``TenantFeed``): per socket and event, only the decision and the write remain.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from config.connection import connection
from governance import live
from governance.access import Capability, agent_reach, capabilities_of

logger = logging.getLogger(__name__)


# Kinds about the tenant as a whole (its usage against its limits), not about one agent.
TENANT_WIDE_PREFIXES = ("usage.",)


def event_visible(
    event: dict[str, Any], *, capabilities: frozenset[Capability], reach: dict[Capability, frozenset[int] | None]
) -> bool:
    """May a user with ``capabilities`` and agent ``reach`` (None: every agent) see ``event``?"""
    kind = str(event.get("type", ""))
    capability = Capability.VIEW
    if kind.startswith("approval.") and Capability.REVIEW in capabilities:
        capability = Capability.REVIEW
    if capability not in capabilities:
        return False
    agent_id = event.get("agent_id")
    if agent_id is None and kind.startswith(TENANT_WIDE_PREFIXES):
        return True
    allowed = reach.get(capability)
    if allowed is None:
        return True
    return agent_id is not None and int(agent_id) in allowed


# A socket whose client stops reading fills its buffer; a send to it then waits. Past this many
# seconds the socket is closed (the page reconnects and resyncs) rather than holding up the
# others of its process.
SEND_TIMEOUT_SECONDS = 2.0


class TenantFeed:
    """This process's one subscription to a tenant's group, fanned out to the process's sockets
    of that tenant in one loop. Each event arrives from Redis once per process and is decoded
    once; each socket then only decides whether its user may see it and writes the bytes the
    sender encoded. (Every socket subscribing on its own costs, per socket and event, a decode,
    a queue hop and a task switch: bench/live.py measured the difference.)"""

    def __init__(self, layer: Any, schema: str) -> None:
        self.layer, self.schema = layer, schema
        self.sockets: dict[OversightConsumer, None] = {}  # a set that keeps the joining order
        self.channel: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    async def join(self, socket: OversightConsumer) -> None:
        async with self.lock:
            self.sockets[socket] = None
            if self.task is None:
                self.channel = await self.layer.new_channel()
                await self.layer.group_add(live.group_name(self.schema), self.channel)
                self.task = asyncio.ensure_future(self._run(self.channel))

    async def leave(self, socket: OversightConsumer) -> None:
        async with self.lock:
            self.sockets.pop(socket, None)
            if self.sockets or self.task is None or self.channel is None:
                return
            task, channel, self.task, self.channel = self.task, self.channel, None, None
            task.cancel()
            await self.layer.group_discard(live.group_name(self.schema), channel)

    async def _run(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            if message.get("type") != "oversight.event":
                continue
            event = message["event"]
            if event.get("schema") != self.schema:
                continue
            text = message.get("text")
            if text is None:
                text = json.dumps({key: value for key, value in event.items() if key != "schema"})
            for socket in list(self.sockets):
                try:
                    await socket.deliver(event, text)
                except Exception:  # one socket's failure must not starve the others
                    logger.exception("live.deliver_failed", extra={"schema": self.schema})


_feeds: dict[str, TenantFeed] = {}
_closing: set[asyncio.Future[None]] = set()


def _feed(layer: Any, schema: str) -> TenantFeed:
    feed = _feeds.get(schema)
    if feed is None or feed.layer is not layer:
        feed = _feeds[schema] = TenantFeed(layer, schema)
    return feed


class OversightConsumer(AsyncJsonWebsocketConsumer):
    """Authenticated and tenant-bound by ``config.routing.LiveStackMiddleware``; fed by its
    tenant's ``TenantFeed``."""

    async def connect(self) -> None:
        tenant = self.scope["tenant"]
        self.schema: str = tenant.schema_name
        self.capabilities, self.reach = await self._access()
        # Until the hello is out, events wait here (in order) rather than on the wire.
        self.early: list[tuple[dict[str, Any], str]] | None = []
        self.feed = _feed(self.channel_layer, self.schema)
        # Join first, then read the number: every event numbered after it reaches this socket.
        await self.feed.join(self)
        try:
            self.last_seq = await database_sync_to_async(live.sequence_current)(schema=self.schema)
            subprotocols = self.scope.get("subprotocols", [])
            await self.accept(subprotocol=live.SUBPROTOCOL if live.SUBPROTOCOL in subprotocols else None)
            await self.send_json({"type": "hello", "seq": self.last_seq})
        except BaseException:
            await self.feed.leave(self)  # never accepted: no disconnect will come to leave it
            raise
        early, self.early = self.early, None
        for event, text in early:
            await self.deliver(event, text)

    @database_sync_to_async
    def _access(self) -> tuple[frozenset[Capability], dict[Capability, frozenset[int] | None]]:
        # This runs in a worker thread whose connection may have served another tenant last.
        connection.set_tenant(self.scope["tenant"])
        user = self.scope["user"]
        capabilities = capabilities_of(user)
        reach = {capability: agent_reach(user, capability) for capability in (Capability.VIEW, Capability.REVIEW)}
        return capabilities, reach

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "feed"):
            await self.feed.leave(self)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The stream is one-way; a ping keeps proxies from closing an idle socket.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "seq": self.last_seq})

    async def deliver(self, event: dict[str, Any], text: str) -> None:
        """Forward one event of the tenant's stream (``text``: its frame, encoded once), or a
        ``resync`` first when numbers were skipped."""
        if self.early is not None:
            self.early.append((event, text))
            return
        seq = int(event.get("seq") or 0)
        if seq and seq <= self.last_seq:
            return  # numbered before this socket's hello: the page's first fetch has it
        gap = seq > self.last_seq + 1
        self.last_seq = max(self.last_seq, seq)
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                if gap:
                    await self.send_json({"type": "resync", "seq": seq})
                if event_visible(event, capabilities=self.capabilities, reach=self.reach):
                    await self.send(text_data=text)
        except TimeoutError:
            # Out of the fan-out now; the close itself waits for the client too, so it runs
            # on its own (the server's keepalive ends it if the client never reads again), and
            # the disconnect that follows leaves the feed for good.
            logger.info("live.slow_client_closed", extra={"schema": self.schema})
            self.feed.sockets.pop(self, None)
            closing = asyncio.ensure_future(self.close(code=4408))
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
