"""Instagram messaging (Instagram Login, Meta's Graph): the channel package
(the registry discovers it by its CHANNEL)."""

from __future__ import annotations

from shared.channels.instagram.channel import Instagram

CHANNEL = Instagram()
