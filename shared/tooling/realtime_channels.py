"""One Realtime socket: its channels, and the protocol's answer to each frame.

Frames are read one at a time; what goes out is queued (`push`) and written by a
task of the socket's own, so a slow or misbehaving client never holds up the
feed or another client. Every refusal is an answer on the protocol, as Supabase
gives it: a `phx_reply` with status "error" and a `reason`, or, for a joined
channel that must end, a `system` error message followed by `phx_close`. A frame
that is not a frame is answered on the `phoenix` topic; one past MAX_FRAME_BYTES
closes the socket with 1009 (message too big).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import uuid4

import asyncpg
from starlette.websockets import WebSocket, WebSocketDisconnect

from shared.errors import BadRequest
from shared.runtime import Runtime
from shared.tooling.realtime_auth import (
    Identity,
    Policies,
    TokenRefused,
    authorize,
    can_write,
)
from shared.tooling.realtime_presence import presence
from shared.tooling.realtime_protocol import (
    MAX_FRAME_BYTES,
    PHOENIX,
    Frame,
    JoinOptions,
    Ref,
    UserBroadcast,
    decode,
    encode,
    join_options,
    reply,
    system,
)

if TYPE_CHECKING:
    from shared.tooling.realtime_server import Realtime

log = logging.getLogger("connectgain.realtime")

MAX_CHANNELS = 100  # per socket, Supabase's default max_channels_per_client
FEED_WAIT_SECONDS = 5.0  # a join waits this long for the feed's first watermark
OUTBOX_FRAMES = 10_000  # a client this far behind is closed (1013), never waited for
PREFIX = "realtime:"
_CLOSE = object()


@dataclass(eq=False)
class Channel:
    socket: Socket
    name: str  # the topic without "realtime:", as realtime.messages.topic holds it
    join_ref: Ref
    identity: Identity
    options: JoinOptions
    policies: Policies | None  # a private channel's; None on a public one
    presence_key: str
    # a private channel's INSERT checks (per extension), made once per token
    may_write: dict[str, bool] = field(default_factory=dict)
    expiry: asyncio.TimerHandle | None = None

    @property
    def private(self) -> bool:
        return self.options.private

    @property
    def self_broadcast(self) -> bool:
        return self.options.self_broadcast

    @property
    def reads_presence(self) -> bool:
        return self.policies is None or self.policies.presence_read

    @property
    def topic(self) -> str:
        return PREFIX + self.name

    @property
    def key(self) -> tuple[str, bool]:
        return self.name, self.private


class Socket:
    def __init__(
        self, server: Realtime, ws: WebSocket, vsn: str, identity: Identity, runtime: Runtime
    ) -> None:
        self.server, self.ws, self.vsn = server, ws, vsn
        self.identity = identity  # the socket's key: a channel's, when its join names none
        self.runtime = runtime
        self.channels: dict[str, Channel] = {}
        self.outbox: asyncio.Queue[object] = asyncio.Queue(OUTBOX_FRAMES)
        self.closing: tuple[int, str] | None = None

    # ---- what goes out --------------------------------------------------------------

    def push(self, data: str | bytes) -> None:
        if self.closing is not None:
            return
        try:
            self.outbox.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("Realtime closed a client %d frames behind", OUTBOX_FRAMES)
            self.close(1013, "Too far behind: the server stopped queueing for this client")

    def send(self, frame: Frame) -> None:
        self.push(encode(frame, self.vsn))

    def close(self, code: int, reason: str) -> None:
        """Closes the socket once what is queued is written; a client too far behind
        for the queue loses what it has not read yet."""
        if self.closing is None:
            self.closing = (code, reason)
            if self.outbox.full():
                while not self.outbox.empty():
                    self.outbox.get_nowait()
            self.outbox.put_nowait(_CLOSE)

    async def _write(self) -> None:
        while (data := await self.outbox.get()) is not _CLOSE:
            if isinstance(data, bytes):
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_text(str(data))
        code, reason = self.closing or (1000, "")
        await self.ws.close(code, reason)

    # ---- what comes in --------------------------------------------------------------

    async def serve(self) -> None:
        writer = asyncio.create_task(self._write(), name="realtime-socket-writer")
        try:
            while self.closing is None:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("text")
                if data is None:
                    data = message.get("bytes") or b""
                size = len(data) if isinstance(data, bytes) else len(data.encode())
                if size > MAX_FRAME_BYTES:
                    self.close(1009, f"Frame too large: the limit is {MAX_FRAME_BYTES} bytes")
                    break
                await self._frame(data)
        except WebSocketDisconnect:
            pass
        finally:
            for channel in list(self.channels.values()):
                self._drop(channel)
            if self.closing is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer, 5)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _frame(self, data: str | bytes) -> None:
        try:
            frame = decode(data, self.vsn)
        except BadRequest as exc:
            garbage = {
                "status": "error",
                "response": {"reason": f"MalformedMessage: {exc.message}"},
            }
            self.send(Frame(PHOENIX, "phx_reply", garbage))
            return
        try:
            await self._dispatch(frame)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("Realtime could not answer %s on %s: %s", frame.event, frame.topic, exc)
            reason = "UnableToConnectToProject: Realtime was unable to reach the database"
            self.refuse(frame, reason)
        except Exception:  # a fault of ours answers this frame and spares the socket
            log.exception("Realtime failed on %s %s", frame.event, frame.topic)
            self.refuse(frame, "UnknownErrorOnChannel")

    async def _dispatch(self, frame: Frame) -> None:
        if frame.topic == PHOENIX and frame.event == "heartbeat":
            self.send(reply(frame, "ok", {}))
            return
        if frame.event == "phx_join" and frame.topic.startswith(PREFIX):
            await self._join(frame)
            return
        channel = self.channels.get(frame.topic)
        if channel is None:  # Phoenix's answer to a frame for a topic not joined
            self.refuse(frame, "unmatched topic")
        elif frame.event == "phx_leave":
            self._drop(channel)
            self.send(reply(frame, "ok", {}))
        elif frame.event == "access_token":
            await self._refresh(channel, frame)
        elif frame.event == "broadcast":
            await self._broadcast(channel, frame)
        elif frame.event == "presence":
            await presence(channel, frame)
        else:
            reason = f"UnknownEvent: {frame.event[:100]!r} is not a Realtime event"
            self.refuse(frame, reason)

    async def _join(self, frame: Frame) -> None:
        name = frame.topic.removeprefix(PREFIX)
        if not name:
            self.refuse(frame, "TopicNameRequired: You must provide a topic name")
            return
        try:
            options = join_options(frame.payload_dict)
        except BadRequest as exc:
            self.refuse(frame, f"InvalidJoinPayload: {exc.message}")
            return
        token = options.access_token
        if token is None or token.startswith("sb_"):
            token = self.identity.token  # no user token: the socket's key, as Supabase does
        try:
            identity, policies = await authorize(
                self.runtime, token, name, private=options.private, known=self.identity
            )
        except TokenRefused as refused:
            self.refuse(frame, str(refused))
            return
        if (previous := self.channels.get(frame.topic)) is not None:
            self._drop(previous)  # a second join replaces the first, as in Phoenix
        elif len(self.channels) >= MAX_CHANNELS:
            self.refuse(frame, "ChannelRateLimitReached: Too many channels")
            return
        join_ref = frame.join_ref or frame.ref
        key = options.presence_key or str(uuid4())
        channel = Channel(self, name, join_ref, identity, options, policies, key)
        # Broadcasts committed from here on reach it (a TimeoutError, an OSError, is
        # answered as the database being out of reach).
        await asyncio.wait_for(self.server.feed.ready(), FEED_WAIT_SECONDS)
        self.channels[frame.topic] = channel
        self.server.subscribe(channel)
        self._watch_expiry(channel)
        self.send(reply(frame, "ok", {"postgres_changes": []}))
        if options.replication_ready:  # the feed is reading: database broadcasts flow
            ready = "Replication connection established"
            self.send(system(channel.topic, "ok", ready, join_ref))
        if options.presence_enabled and channel.reads_presence:
            state = self.server.presences.state(channel.key)
            self.send(Frame(channel.topic, "presence_state", state, None, join_ref))

    def refuse(self, frame: Frame, reason: str) -> None:
        """The error reply to `frame`, with Supabase's `reason`."""
        self.send(reply(frame, "error", {"reason": reason}))

    async def _refresh(self, channel: Channel, frame: Frame) -> None:
        token = frame.payload_dict.get("access_token")
        if token is not None and not isinstance(token, str):
            self.refuse(frame, "InvalidPayload: access_token is a string")
            return
        if token is None or token.startswith("sb_") or token == channel.identity.token:
            return
        try:
            identity, policies = await authorize(
                self.runtime, token, channel.name, private=channel.private, had=channel.policies
            )
        except TokenRefused as refused:
            self.shut(channel, refused.message)
            return
        channel.identity, channel.policies, channel.may_write = identity, policies, {}
        self._watch_expiry(channel)

    async def _broadcast(self, channel: Channel, frame: Frame) -> None:
        payload = frame.payload
        if not await self.may_write(channel, "broadcast"):
            log.info("Realtime refused a broadcast on %s: INSERT policy", channel.name)
            if channel.options.ack:  # Supabase stays silent; an acknowledging client hears why
                denied = "You do not have permissions to write to this Channel topic"
                self.refuse(frame, f"Unauthorized: {denied}: {channel.name}")
            return
        if isinstance(payload, UserBroadcast):
            payload = UserBroadcast(payload.event, payload.data, payload.is_json)  # no client meta
        self.server.fan_out(channel.key, payload, sender=channel)
        if channel.options.ack:
            self.send(reply(frame, "ok", {}))

    async def may_write(self, channel: Channel, extension: str) -> bool:
        """Whether the INSERT policies let the channel write `extension` (public: yes)."""
        if not channel.private:
            return True
        if extension not in channel.may_write:
            allowed = await can_write(self.runtime, channel.identity, channel.name, extension)
            channel.may_write[extension] = allowed
        return channel.may_write[extension]

    # ---- a channel's end ------------------------------------------------------------

    def shut(self, channel: Channel, message: str) -> None:
        """Ends a joined channel as Supabase does: a system error, then phx_close."""
        self.send(system(channel.topic, "error", message, channel.join_ref))
        self.send(Frame(channel.topic, "phx_close", {}, channel.join_ref, channel.join_ref))
        self._drop(channel)

    def _drop(self, channel: Channel) -> None:
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]
        self.server.unsubscribe(channel)
        if (diff := self.server.presences.untrack(channel)) is not None:
            self.server.presence_diff(channel.key, diff)
        if channel.expiry is not None:
            channel.expiry.cancel()

    def _watch_expiry(self, channel: Channel) -> None:
        if channel.expiry is not None:
            channel.expiry.cancel()
        expires_at = channel.identity.expires_at
        if expires_at is not None:
            delay = max(0.0, expires_at - time.time())
            channel.expiry = asyncio.get_running_loop().call_later(delay, self._expired, channel)

    def _expired(self, channel: Channel) -> None:
        if self.channels.get(channel.topic) is channel:
            seconds = max(0, int(time.time() - (channel.identity.expires_at or 0)))
            self.shut(channel, f"Token has expired {seconds} seconds ago")
