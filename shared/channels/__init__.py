"""The channels: one module each, registered here by name."""

from __future__ import annotations

from shared.channels.base import Channel
from shared.channels.email import Email
from shared.channels.instagram import Instagram
from shared.channels.messenger import Messenger
from shared.channels.sms import Sms
from shared.channels.telegram import Telegram
from shared.channels.whatsapp import WhatsApp
from shared.errors import NotFound

CHANNELS: dict[str, Channel] = {
    channel.name: channel
    for channel in (WhatsApp(), Telegram(), Messenger(), Instagram(), Email(), Sms())
}


def channel_named(name: str) -> Channel:
    try:
        return CHANNELS[name]
    except KeyError:
        raise NotFound(f"No channel called {name!r}") from None
