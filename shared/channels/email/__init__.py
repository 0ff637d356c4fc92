"""E-mail through Mailgun: the channel package
(the registry discovers it by its CHANNEL)."""

from __future__ import annotations

from shared.channels.email.channel import Email

CHANNEL = Email()
