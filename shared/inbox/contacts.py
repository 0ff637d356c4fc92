"""Who wrote: the sender's phone number and e-mail in the one form contacts are matched on.

Matching itself happens in app.ingest_message (one round trip per message): a
known identity is its contact; a new one joins the contact with the same phone
number (E.164) or e-mail address (lower-cased), or starts a contact.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


# Parsing a number is the costliest step of reading a message, and the same
# senders write again and again.
@lru_cache(maxsize=16384)
def normalize_phone(raw: str | None) -> str | None:
    """E.164, or None when it is not a possible phone number."""
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw if raw.startswith("+") else f"+{raw}", None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str | None) -> str | None:
    if not raw or "@" not in raw:
        return None
    return raw.strip().lower()
