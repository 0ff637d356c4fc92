"""The one enumeration of message statuses in Python; it equals the database's
`message_status` enum, in its order (tests/channels/test_registry.py checks it)."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENDING = "sending"  # claimed: the provider is being called
    UNKNOWN = "unknown"  # the provider may have acted: a person decides
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


STATUSES: tuple[str, ...] = tuple(MessageStatus)
