"""The live oversight stream: one socket per page or API client, fed by the tenant's group.

Frames sent to the client (JSON):
- ``{"type": "hello", "seq": n}`` once, right after accept: the latest sequence number;
- each event the user may see: ``{"type": "task.state" | "task.step" | "approval.requested" …,
  "seq": n, "agent_id": …, …}``;
- ``{"type": "resync", "seq": n}`` when the group skipped a number (the channel layer may drop
  messages): the client refetches what it shows.

Events of agents outside the user's reach are left out (``governance.access``): the agents the
user may see, and for approval events the agents they may review.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from config.connection import connection
from governance import live
from governance.access import Capability, agent_reach, capabilities_of

logger = logging.getLogger(__name__)


def event_visible(
    event: dict[str, Any], *, capabilities: frozenset[Capability], reach: dict[Capability, frozenset[int] | None]
) -> bool:
    """May a user with ``capabilities`` and agent ``reach`` (None: every agent) see ``event``?"""
    capability = Capability.VIEW
    if str(event.get("type", "")).startswith("approval.") and Capability.REVIEW in capabilities:
        capability = Capability.REVIEW
    if capability not in capabilities:
        return False
    allowed = reach.get(capability)
    if allowed is None:
        return True
    agent_id = event.get("agent_id")
    return agent_id is not None and int(agent_id) in allowed


class OversightConsumer(AsyncJsonWebsocketConsumer):
    """Authenticated and tenant-bound by ``config.routing.LiveStackMiddleware``."""

    async def connect(self) -> None:
        tenant = self.scope["tenant"]
        self.schema: str = tenant.schema_name
        self.capabilities, self.reach = await self._access()
        # Join first, then read the number: every event numbered after it reaches this socket.
        await self.channel_layer.group_add(live.group_name(self.schema), self.channel_name)
        self.last_seq = await database_sync_to_async(live.sequence_current)(schema=self.schema)
        subprotocols = self.scope.get("subprotocols", [])
        await self.accept(subprotocol=live.SUBPROTOCOL if live.SUBPROTOCOL in subprotocols else None)
        await self.send_json({"type": "hello", "seq": self.last_seq})

    @database_sync_to_async
    def _access(self) -> tuple[frozenset[Capability], dict[Capability, frozenset[int] | None]]:
        # This runs in a worker thread whose connection may have served another tenant last.
        connection.set_tenant(self.scope["tenant"])
        user = self.scope["user"]
        capabilities = capabilities_of(user)
        reach = {capability: agent_reach(user, capability) for capability in (Capability.VIEW, Capability.REVIEW)}
        return capabilities, reach

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "schema"):
            await self.channel_layer.group_discard(live.group_name(self.schema), self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The stream is one-way; a ping keeps proxies from closing an idle socket.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "seq": self.last_seq})

    async def oversight_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        if event.get("schema") != self.schema:
            return
        seq = int(event.get("seq") or 0)
        gap = seq > self.last_seq + 1
        self.last_seq = max(self.last_seq, seq)
        if gap:
            await self.send_json({"type": "resync", "seq": seq})
        if event_visible(event, capabilities=self.capabilities, reach=self.reach):
            await self.send_json({key: value for key, value in event.items() if key != "schema"})
