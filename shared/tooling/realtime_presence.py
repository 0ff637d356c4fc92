"""Presence on the local Realtime server, in Phoenix Presence's shapes.

A channel tracks one state under its presence key (`config.presence.key`, else a
key of its own): `{"type": "presence", "event": "track", "payload": {...}}`. The
channels of the topic hear `presence_diff` `{"joins": {key: {"metas": [...]}},
"leaves": {...}}` (tracking again leaves the old meta and joins the new one, with
`phx_ref_prev`); a channel joined with `config.presence.enabled` first gets the
whole `presence_state`. Leaving, or losing the socket, untracks. On a private
channel, reading presence takes the SELECT policies and tracking the INSERT ones
(realtime.messages.extension = 'presence'), as on Supabase.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from shared.tooling.realtime_protocol import Frame, reply

if TYPE_CHECKING:
    from shared.tooling.realtime_channels import Channel

Key = tuple[str, bool]
Metas = dict[str, dict[str, list[dict[str, Any]]]]


def _ref() -> str:
    return secrets.token_urlsafe(9)


class Presences:
    def __init__(self) -> None:
        # topic → channel → its tracked meta (one per channel, under its presence key)
        self.tracked: dict[Key, dict[Channel, dict[str, Any]]] = defaultdict(dict)

    def state(self, key: Key) -> Metas:
        """The topic's presence_state: presence key → its metas."""
        state: Metas = {}
        for channel, meta in self.tracked.get(key, {}).items():
            state.setdefault(channel.presence_key, {"metas": []})["metas"].append(meta)
        return state

    def track(self, channel: Channel, payload: dict[str, Any]) -> dict[str, Metas] | None:
        """The diff of `channel` tracking `payload`; None if it changes nothing."""
        tracked = self.tracked[channel.key]
        previous = tracked.get(channel)
        if previous is not None and _state(previous) == payload:
            return None
        meta = {**payload, "phx_ref": _ref()}
        if previous is not None:
            meta["phx_ref_prev"] = previous["phx_ref"]
        tracked[channel] = meta
        leaves = {channel.presence_key: {"metas": [previous]}} if previous is not None else {}
        return {"joins": {channel.presence_key: {"metas": [meta]}}, "leaves": leaves}

    def untrack(self, channel: Channel) -> dict[str, Metas] | None:
        """The diff of `channel` leaving; None if it tracked nothing."""
        tracked = self.tracked.get(channel.key)
        if tracked is None or channel not in tracked:
            return None
        meta = tracked.pop(channel)
        if not tracked:
            del self.tracked[channel.key]
        return {"joins": {}, "leaves": {channel.presence_key: {"metas": [meta]}}}


def _state(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in ("phx_ref", "phx_ref_prev")}


async def presence(channel: Channel, frame: Frame) -> None:
    """A `presence` event: track or untrack, answered ok or with the reason why not."""
    socket, server = channel.socket, channel.socket.server
    event = frame.payload_dict.get("event")
    state = frame.payload_dict.get("payload", {})
    if not isinstance(event, str) or event.lower() not in ("track", "untrack"):
        socket.refuse(frame, "UnknownPresenceEvent: track or untrack")
        return
    if event.lower() == "untrack":
        diff = server.presences.untrack(channel)
    elif not isinstance(state, dict):
        socket.refuse(frame, "Presence track payload must be a map")
        return
    elif not await socket.may_write(channel, "presence"):
        denied = "You do not have permissions to track presence on this Channel topic"
        socket.refuse(frame, f"Unauthorized: {denied}: {channel.name}")
        return
    else:
        diff = server.presences.track(channel, state)
    if diff is not None:
        server.presence_diff(channel.key, diff)
    socket.send(reply(frame, "ok", {}))
