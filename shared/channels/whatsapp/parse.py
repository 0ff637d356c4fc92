"""The WhatsApp Cloud API webhook body, parsed at the edge: the models of its entries,
changes, messages and statuses (each checked on its own, so one malformed item does not
sink the others), and the content of each message type (`MESSAGE_TYPES`).

The models name the fields the inbox reads and keep every other field (extra="allow"),
so the raw event stored for the retry job and for bots loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.channels import base


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class WaContact(_Loose):
    wa_id: str
    profile: dict[str, Any] = Field(default_factory=dict)


class WaMessage(_Loose):
    id: str
    from_: str = Field(alias="from")
    timestamp: str
    type: str


class WaStatus(_Loose):
    id: str
    status: str
    timestamp: str
    recipient_id: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)


class WaValue(_Loose):
    """A `messages` change; its items are checked one by one (WhatsApp.events)."""

    metadata: dict[str, Any] = Field(default_factory=dict)
    contacts: list[Any] = Field(default_factory=list)
    messages: list[Any] = Field(default_factory=list)
    statuses: list[Any] = Field(default_factory=list)


class WaChange(_Loose):
    field: str
    value: dict[str, Any]


class WaTemplateStatus(_Loose):
    """A `message_template_status_update` change: a template approved, rejected, paused …"""

    event: str
    message_template_id: int | str
    message_template_name: str
    message_template_language: str
    reason: str | None = None


class WaEntry(_Loose):
    id: str
    changes: list[WaChange]


def from_timestamp(ts: str) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


def validation_errors(exc: ValidationError) -> str:
    """A validation error without the input it quotes (kept in the event already)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
    )


Item = TypeVar("Item", bound=BaseModel)


def each_item(
    items: list[Any],
    model: type[Item],
    event: Callable[[Item], base.RawEvent],
    *,
    part: str,
) -> list[base.RawEvent]:
    """An event per item of a change; one not of the documented shape is kept as a
    malformed event of its own, and the others are processed."""
    events = []
    for item in items:
        try:
            checked = model.model_validate(item)
        except ValidationError as exc:
            events.append(base.malformed(item, validation_errors(exc), part=part))
            continue
        events.append(event(checked))
    return events


# ---- message types -----------------------------------------------------------------------------


def _media(kind: base.ContentType) -> Callable[[dict[str, Any]], base.Content]:
    def parse(m: dict[str, Any]) -> base.Content:
        media = m.get(str(kind), {})
        return base.attached(
            kind, media, caption=media.get("caption"), id_key="id", filename_key="filename"
        )

    return parse


def _text(m: dict[str, Any]) -> base.Content:
    return "text", m.get("text", {}).get("body"), [], {}


def _location(m: dict[str, Any]) -> base.Content:
    place = m.get("location", {})
    label = place.get("name") or place.get("address")
    body = label or f"{place.get('latitude')},{place.get('longitude')}"
    return "location", body, [], {"location": place}


def _contacts(m: dict[str, Any]) -> base.Content:
    cards = m.get("contacts", [])
    names = [c.get("name", {}).get("formatted_name") for c in cards]
    return "contacts", ", ".join(n for n in names if n) or None, [], {"contacts": cards}


def _interactive(m: dict[str, Any]) -> base.Content:
    interactive = m.get("interactive", {})
    reply = interactive.get(interactive.get("type", ""), {})
    return "interactive", reply.get("title"), [], {"reply": reply, "type": interactive.get("type")}


def _button(m: dict[str, Any]) -> base.Content:
    button = m.get("button", {})
    return "interactive", button.get("text"), [], {"payload": button.get("payload")}


def unsupported(m: dict[str, Any]) -> base.Content:
    return "unsupported", None, [], {"type": m.get("type"), "errors": m.get("errors", [])}


MESSAGE_TYPES: dict[str, Callable[[dict[str, Any]], base.Content]] = {
    "text": _text,
    "image": _media("image"),
    "video": _media("video"),
    "audio": _media("audio"),
    "document": _media("document"),
    "sticker": _media("sticker"),
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
}
IGNORED_TYPES = {"reaction", "system", "ephemeral", "request_welcome"}
STATUSES = {"sent", "delivered", "read", "failed"}
TEMPLATE_STATUS = "message_template_status_update"
