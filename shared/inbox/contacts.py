"""Who wrote: a channel identity becomes one contact per person in an organization.

An identity seen before is its contact. A new one joins the contact with the
same phone number (E.164) or e-mail address (lower-cased), or starts a contact.
Concurrent webhooks from one sender are serialised by a transaction lock on
the identity, so a person never becomes two contacts.
"""

from __future__ import annotations

from uuid import UUID

import phonenumbers

from shared.channels.base import Account, Sender
from shared.db import Connection


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


async def resolve_contact(
    *, conn: Connection, account: Account, sender: Sender
) -> tuple[UUID, bool]:
    """The contact behind `sender` on this account's channel; True when it was created."""
    org, channel = account.organization_id, account.channel
    await conn.execute(
        "select pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"{org}:{channel}:{sender.external_id}",
    )
    phone, email = normalize_phone(sender.phone), normalize_email(sender.email)
    known: UUID | None = await conn.fetchval(
        "select contact_id from public.contact_identities"
        " where organization_id = $1 and channel = $2 and external_id = $3",
        org,
        channel,
        sender.external_id,
    )
    if known is not None:
        await _fill_gaps(conn, known, sender, phone)
        return known, False

    contact: UUID | None = await conn.fetchval(
        "select id from public.contacts where organization_id = $1"
        " and (phone = $2 or email = $3) order by (phone = $2) desc nulls last limit 1",
        org,
        phone,
        email,
    )
    created = contact is None
    if contact is None:
        contact = await conn.fetchval(
            "insert into public.contacts (organization_id, name, phone, email, avatar_url)"
            " values ($1, $2, $3, $4, $5) on conflict do nothing returning id",
            org,
            sender.name,
            phone,
            email,
            sender.avatar_url,
        )
        if contact is None:  # another identity took the phone or e-mail meanwhile
            created = False
            contact = await conn.fetchval(
                "select id from public.contacts where organization_id = $1"
                " and (phone = $2 or email = $3) limit 1",
                org,
                phone,
                email,
            )
    assert contact is not None
    await conn.execute(
        "insert into public.contact_identities"
        " (organization_id, contact_id, channel, external_id, display_name)"
        " values ($1, $2, $3, $4, $5)",
        org,
        contact,
        channel,
        sender.external_id,
        sender.name,
    )
    return contact, created


async def _fill_gaps(conn: Connection, contact: UUID, sender: Sender, phone: str | None) -> None:
    """Learn a name or phone number the contact did not have yet (never overwrite)."""
    if sender.name is None and phone is None:
        return
    await conn.execute(
        """
        update public.contacts c
           set name = coalesce(c.name, $2),
               phone = coalesce(c.phone, case when not exists (
                 select 1 from public.contacts o
                  where o.organization_id = c.organization_id and o.phone = $3) then $3 end)
         where c.id = $1 and (c.name is null or c.phone is null)
        """,
        contact,
        sender.name,
        phone,
    )
