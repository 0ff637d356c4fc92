"""The local Supabase Realtime server, at `/realtime/v1/websocket` on the dev gateway.

It speaks Supabase Realtime's protocol (shared/tooling/realtime_protocol.py), so
supabase-js and the Python `realtime` client work against it unchanged:

- the socket: `?apikey=<anon or service key, or a user token>&vsn=1.0.0|2.0.0`; a
  missing or refused key is an HTTP 401 `{"error": …}` before the upgrade, as on
  Supabase;
- channels `realtime:<name>`: join (`phx_join`), leave, heartbeats on `phoenix`,
  `access_token` refreshes, broadcasts between clients (`self`, `ack`), presence
  (shared/tooling/realtime_presence.py), and the broadcasts realtime.send and
  realtime.broadcast_changes commit (shared/tooling/realtime_feed.py), each to the
  channels of its topic that are private if the row is;
- private channels authorized by realtime.messages' policies
  (shared/tooling/realtime_auth.py); shared/tooling/realtime_channels.py holds one
  socket's channels and the protocol's answers.

Channels, presence and the feed live in the serving process: one process
(`connectgain dev`, `connectgain serve` without `--workers`) is one Realtime. Not
served: Postgres Changes (the project broadcasts instead, see
docs/architecture.md), broadcast replay and the REST broadcast endpoint; a join
asking for them gets an error naming what is missing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from shared.runtime import Runtime
from shared.settings import Settings
from shared.tooling.realtime_auth import Identity, TokenRefused, identify
from shared.tooling.realtime_channels import Channel, Socket
from shared.tooling.realtime_feed import Feed, Row
from shared.tooling.realtime_presence import Presences
from shared.tooling.realtime_protocol import (
    MAX_FRAME_BYTES,
    VERSIONS,
    VSN_1,
    Frame,
    UserBroadcast,
    encode,
    encode_broadcast,
)

PATH = "/realtime/v1/websocket"
log = logging.getLogger("connectgain.realtime")

Key = tuple[str, bool]  # (topic name, private): Supabase keeps the two apart


class Realtime:
    def __init__(
        self, settings: Settings, runtime: Callable[[], Runtime | None], *, interval: float = 0.02
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.subscribers: dict[Key, set[Channel]] = defaultdict(set)
        self.presences = Presences()
        self.feed = Feed(
            settings.database_url,
            self.deliver,
            lambda: bool(self.subscribers),
            interval=interval,
        )

    def serves(self, scope: Scope) -> bool:
        """Local mode only: a hosted project has Supabase's own Realtime."""
        local = self.settings.mode == "local"
        return local and (scope["type"] == "websocket" or scope.get("path") == PATH)

    def start(self) -> None:
        """Polls and prunes from now on (else from the first join), in local mode."""
        if self.settings.mode == "local":
            self.feed.start()

    async def close(self) -> None:
        await self.feed.close()

    # ---- the channels of a topic ----------------------------------------------------

    def subscribe(self, channel: Channel) -> None:
        self.subscribers[channel.key].add(channel)
        self.feed.wake()

    def unsubscribe(self, channel: Channel) -> None:
        channels = self.subscribers.get(channel.key)
        if channels is not None:
            channels.discard(channel)
            if not channels:
                del self.subscribers[channel.key]

    def fan_out(
        self, key: Key, payload: dict[str, Any] | UserBroadcast, sender: Channel | None = None
    ) -> int:
        """A broadcast to every channel of `key` that may read it; the sender's own
        only with `self`. Encoded once per serializer. Returns how many got it."""
        encoded: dict[str, str | bytes | None] = {}
        topic = f"realtime:{key[0]}"
        sent = 0
        for channel in list(self.subscribers.get(key, ())):
            if channel is sender and not channel.self_broadcast:
                continue
            if channel.policies is not None and not channel.policies.broadcast_read:
                continue
            vsn = channel.socket.vsn
            if vsn not in encoded:
                if isinstance(payload, UserBroadcast):
                    encoded[vsn] = encode_broadcast(topic, payload, vsn)
                else:
                    encoded[vsn] = encode(Frame(topic, "broadcast", payload), vsn)
            if (data := encoded[vsn]) is not None:
                channel.socket.push(data)
                sent += 1
        return sent

    def presence_diff(self, key: Key, diff: dict[str, Any]) -> None:
        """A presence change to every channel of `key` that may read presence, the
        tracking one's included (Phoenix Presence does so)."""
        encoded: dict[str, str | bytes] = {}
        topic = f"realtime:{key[0]}"
        for channel in list(self.subscribers.get(key, ())):
            if channel.reads_presence:
                vsn = channel.socket.vsn
                if vsn not in encoded:
                    encoded[vsn] = encode(Frame(topic, "presence_diff", diff), vsn)
                channel.socket.push(encoded[vsn])

    def deliver(self, rows: list[Row]) -> None:
        """The feed's rows, in commit order, as Supabase sends database broadcasts:
        the stored payload as the user payload, the row's id as `meta.id`."""
        for row in rows:
            if (row.topic, row.private) not in self.subscribers:
                continue
            if len(row.payload) > MAX_FRAME_BYTES:
                log.warning("Realtime skipped broadcast %s: past the frame limit", row.id)
                continue
            broadcast = UserBroadcast(row.event, row.payload.encode(), True, {"id": str(row.id)})
            self.fan_out((row.topic, row.private), broadcast)

    # ---- the socket -----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            refused = {"error": "The Realtime endpoint takes WebSocket connections only"}
            await JSONResponse(refused, status_code=400)(scope, receive, send)
            return
        ws = WebSocket(scope, receive, send)
        await ws.receive()  # websocket.connect
        admitted = await self._admit(scope)
        if not isinstance(admitted, Identity):
            status, message = admitted
            if "websocket.http.response" in scope.get("extensions", {}):
                await ws.send_denial_response(JSONResponse({"error": message}, status_code=status))
            else:
                await ws.close(code=1008, reason=message)
            return
        runtime = self.runtime()
        assert runtime is not None  # admitted
        await ws.accept()
        await Socket(self, ws, _query(scope).get("vsn") or VSN_1, admitted, runtime).serve()

    async def _admit(self, scope: Scope) -> Identity | tuple[int, str]:
        """The socket key's identity, or why the upgrade is refused (status, message),
        as Supabase words it."""
        if scope.get("path") != PATH:
            return 404, "Not found"
        query = _query(scope)
        if (query.get("vsn") or VSN_1) not in VERSIONS:
            return 400, f"Unsupported vsn; this server speaks {' and '.join(VERSIONS)}"
        runtime = self.runtime()
        if runtime is None:
            return 503, "Realtime is starting"
        key = _api_key(scope, query)
        if not key:
            return 401, "API key is missing"
        try:
            return await identify(key, runtime=runtime)
        except TokenRefused as refused:
            return 401, refused.message


def _query(scope: Scope) -> dict[str, str]:
    raw = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {name: values[-1] for name, values in raw.items()}


def _api_key(scope: Scope, query: dict[str, str]) -> str:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    return headers.get("x-api-key") or headers.get("apikey") or query.get("apikey", "")
