"""Telegram Bot API: the channel package
(the registry discovers it by its CHANNEL)."""

from __future__ import annotations

from shared.channels.telegram.channel import Telegram

CHANNEL = Telegram()
