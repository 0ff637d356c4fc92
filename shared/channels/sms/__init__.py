"""SMS and MMS through Twilio: the channel package
(the registry discovers it by its CHANNEL)."""

from __future__ import annotations

from shared.channels.sms.channel import Sms

CHANNEL = Sms()
