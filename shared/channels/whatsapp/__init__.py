"""WhatsApp Cloud API (Meta's Graph): the channel package
(the registry discovers it by its CHANNEL)."""

from __future__ import annotations

from shared.channels.whatsapp.channel import WhatsApp

CHANNEL = WhatsApp()
