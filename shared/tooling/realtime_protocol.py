"""Phoenix channel frames, as Supabase Realtime and its clients put them on the wire.

The socket's `vsn` query parameter picks the serializer:

- `1.0.0` (the Python `realtime` client): JSON objects
  `{"topic", "event", "payload", "ref", "join_ref"}`; the server's own frames carry
  no `join_ref`, as Phoenix's V1 serializer leaves it out.
- `2.0.0` (supabase-js's realtime-js): JSON arrays `[join_ref, ref, topic, event,
  payload]`, plus Supabase's binary frames for broadcasts: a client's broadcast
  arrives as a "user broadcast push" (kind 3) and broadcasts go out as "user
  broadcast" frames (kind 4), their payload JSON text (or raw bytes) after a header
  of one-byte lengths.

A frame that cannot be read, or a join whose options are not Supabase's, raises
BadRequest; what the server answers is its business (realtime_channels.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared import safejson
from shared.errors import BadRequest

VSN_1 = "1.0.0"
VSN_2 = "2.0.0"
VERSIONS = (VSN_1, VSN_2)
PHOENIX = "phoenix"  # the socket's own topic: heartbeats
# The largest frame read, text or binary (Supabase's own is 5 MB; ours is the functions'
# body limit). A larger frame closes the socket with 1009, the WebSocket "too big" code.
MAX_FRAME_BYTES = 1_048_576

_USER_BROADCAST_PUSH = 3  # client → server: a broadcast with its payload as bytes
_USER_BROADCAST = 4  # server → client
_JSON_ENCODING = 1

Ref = str | int | None


@dataclass(frozen=True)
class UserBroadcast:
    """A broadcast whose payload travels as bytes: JSON text, or opaque binary."""

    event: str
    data: bytes
    is_json: bool = True
    meta: dict[str, Any] | None = None

    def as_json_payload(self) -> dict[str, Any] | None:
        """The broadcast as a JSON frame's payload; None for binary data (vsn 1 cannot
        carry it)."""
        if not self.is_json:
            return None
        payload: dict[str, Any] = {
            "type": "broadcast",
            "event": self.event,
            "payload": safejson.loads(self.data, what="broadcast payload"),
        }
        if self.meta:
            payload["meta"] = self.meta
        return payload


@dataclass(frozen=True)
class Frame:
    topic: str
    event: str
    payload: dict[str, Any] | UserBroadcast
    ref: Ref = None
    join_ref: Ref = None

    @property
    def payload_dict(self) -> dict[str, Any]:
        return self.payload if isinstance(self.payload, dict) else {}


def _ref(value: object, name: str) -> Ref:
    if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
        return value
    raise BadRequest(f"The frame's {name} must be a string or null")


def _frame(topic: object, event: object, payload: object, ref: object, join_ref: object) -> Frame:
    if not isinstance(topic, str) or not topic:
        raise BadRequest("The frame's topic must be a non-empty string")
    if not isinstance(event, str) or not event:
        raise BadRequest("The frame's event must be a non-empty string")
    if not isinstance(payload, dict):
        raise BadRequest("The frame's payload must be a JSON object")
    return Frame(topic, event, payload, _ref(ref, "ref"), _ref(join_ref, "join_ref"))


def decode(message: str | bytes, vsn: str) -> Frame:
    """One client frame; BadRequest when it is not one."""
    if isinstance(message, bytes):
        if vsn != VSN_2:
            raise BadRequest("Binary frames need vsn=2.0.0")
        return _decode_binary(message)
    data = safejson.loads(message, what="frame")
    if vsn == VSN_1:
        if not isinstance(data, dict):
            raise BadRequest("A vsn 1.0.0 frame is a JSON object")
        return _frame(
            data.get("topic"), data.get("event"), data.get("payload"),
            data.get("ref"), data.get("join_ref"),
        )  # fmt: skip
    if not isinstance(data, list) or len(data) < 5:
        raise BadRequest("A vsn 2.0.0 frame is a JSON array [join_ref, ref, topic, event, payload]")
    join_ref, ref, topic, event, payload = data[:5]
    return _frame(topic, event, payload, ref, join_ref)


def _decode_binary(raw: bytes) -> Frame:
    if not raw or raw[0] != _USER_BROADCAST_PUSH:
        raise BadRequest("The only binary frame a client may send is a broadcast (kind 3)")
    if len(raw) < 7:
        raise BadRequest("The binary frame's header is cut short")
    sizes, encoding = raw[1:6], raw[6]
    offset, parts = 7, []
    for size in sizes:
        if offset + size > len(raw):
            raise BadRequest("The binary frame is shorter than its header says")
        parts.append(raw[offset : offset + size])
        offset += size
    try:
        join_ref, ref, topic, event, metadata = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError as exc:
        raise BadRequest("The binary frame's header fields are not UTF-8") from exc
    data = raw[offset:]
    if encoding == _JSON_ENCODING:
        safejson.loads(data, what="broadcast payload")  # refused here, not at every reader
    meta = safejson.loads(metadata, what="broadcast metadata") if metadata else None
    if meta is not None and not isinstance(meta, dict):
        raise BadRequest("The broadcast's metadata must be a JSON object")
    broadcast = UserBroadcast(event, data, encoding == _JSON_ENCODING, meta)
    return Frame(topic or "", "broadcast", broadcast, ref or None, join_ref or None)


def encode(frame: Frame, vsn: str) -> str | bytes:
    """A server frame in the socket's serializer."""
    if isinstance(frame.payload, UserBroadcast):
        return encode_broadcast(frame.topic, frame.payload, vsn) or b""
    if vsn == VSN_1:
        fields = {"topic": frame.topic, "event": frame.event, "payload": frame.payload}
        return json.dumps({**fields, "ref": frame.ref})
    return json.dumps([frame.join_ref, frame.ref, frame.topic, frame.event, frame.payload])


def encode_broadcast(topic: str, broadcast: UserBroadcast, vsn: str) -> str | bytes | None:
    """A broadcast as Supabase fans it out: a kind 4 binary frame to vsn 2 sockets, a
    JSON frame to vsn 1 ones; None when the socket cannot carry it (binary data on
    vsn 1, a name past the binary header's 255 bytes)."""
    if vsn == VSN_1:
        payload = broadcast.as_json_payload()
        if payload is None:
            return None
        return json.dumps({"topic": topic, "event": "broadcast", "payload": payload, "ref": None})
    meta = json.dumps(broadcast.meta).encode() if broadcast.meta else b""
    fields = (topic.encode(), broadcast.event.encode(), meta)
    if any(len(field) > 255 for field in fields):
        return None
    header = bytes([_USER_BROADCAST, *(len(field) for field in fields), int(broadcast.is_json)])
    return header + b"".join(fields) + broadcast.data


def _flag(config: dict[str, Any], name: str) -> bool:
    value: object = config.get(name, False)
    if value is None or isinstance(value, bool):
        return bool(value)
    if value in ("true", "false"):  # as Supabase's join payload reads them
        return value == "true"
    raise BadRequest(f"config.{name} must be a boolean")


def _section(value: object, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be an object")
    return value


@dataclass(frozen=True)
class JoinOptions:
    private: bool
    self_broadcast: bool
    ack: bool
    presence_enabled: bool
    presence_key: str  # "" when the client names none
    access_token: str | None
    replication_ready: bool = False  # asks for a system message once broadcasts flow


def join_options(payload: dict[str, Any]) -> JoinOptions:
    """A join's options; BadRequest naming what is wrong with them."""
    config = _section(payload.get("config"), "config")
    broadcast = _section(config.get("broadcast"), "config.broadcast")
    presence = _section(config.get("presence"), "config.presence")
    if config.get("postgres_changes"):
        raise BadRequest("config.postgres_changes is not served locally: broadcast instead")
    if isinstance(broadcast.get("replay"), dict):
        raise BadRequest("config.broadcast.replay is not served locally")
    token = payload.get("access_token") or payload.get("user_token")
    if token is not None and not isinstance(token, str):
        raise BadRequest("access_token must be a string")
    key = presence.get("key") or ""
    if not isinstance(key, str):
        raise BadRequest("config.presence.key must be a string")
    return JoinOptions(
        private=_flag(config, "private"),
        self_broadcast=_flag(broadcast, "self"),
        ack=_flag(broadcast, "ack"),
        presence_enabled=_flag(presence, "enabled"),
        presence_key=key,
        access_token=token,
        replication_ready=_flag(broadcast, "replication_ready"),
    )


def reply(frame: Frame, status: str, response: dict[str, Any]) -> Frame:
    """The phx_reply to `frame`, on its topic and refs."""
    payload = {"status": status, "response": response}
    return Frame(frame.topic, "phx_reply", payload, frame.ref, frame.join_ref)


def system(topic: str, status: str, message: str, join_ref: Ref) -> Frame:
    """A `system` message on a joined channel, as Supabase pushes one (no ref)."""
    channel = topic.removeprefix("realtime:")
    payload = {"channel": channel, "extension": "system", "status": status, "message": message}
    return Frame(topic, "system", payload, None, join_ref)
