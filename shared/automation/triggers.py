"""The events a rule starts on, and the records of each: the first is its subject.

An event names one row (its aggregate); the other records are found from it (a
message's conversation and contact, a deal's contact …) in one query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.crm.entities import CONTACTS, CONVERSATIONS, DEALS, MESSAGES, TAGS, TASKS, Entity
from shared.db import Connection

ENTITIES: dict[str, Entity] = {
    "message": MESSAGES,
    "conversation": CONVERSATIONS,
    "contact": CONTACTS,
    "deal": DEALS,
    "task": TASKS,
    "tag": TAGS,  # the tag a *.tag_added event added
}
TAGGABLE = ("contact", "conversation", "deal")


@dataclass(frozen=True)
class Trigger:
    name: str
    doc: str
    root: str  # the entity of the event's aggregate
    # records the event's payload names beside its root: (entity, payload key)
    extra: tuple[tuple[str, str], ...] = ()


_ROOT_RECORDS = {
    "message": ("message", "conversation", "contact"),
    "conversation": ("conversation", "contact"),
    "contact": ("contact",),
    "deal": ("deal", "contact"),
    "task": ("task", "contact", "deal"),
}

# The records of a root row, by the root's id ($2) in its organization ($1).
_RESOLVE = {
    "message": """
        select m.id as message, v.id as conversation, v.contact_id as contact
          from public.messages m
          join public.conversations v on v.organization_id = m.organization_id
                                     and v.id = m.conversation_id
         where m.organization_id = $1 and m.id = $2""",
    "conversation": """
        select v.id as conversation, v.contact_id as contact from public.conversations v
         where v.organization_id = $1 and v.id = $2""",
    "contact": """
        select c.id as contact from public.contacts c
         where c.organization_id = $1 and c.id = $2""",
    "deal": """
        select d.id as deal, d.contact_id as contact from public.deals d
         where d.organization_id = $1 and d.id = $2""",
    "task": """
        select t.id as task, t.contact_id as contact, t.deal_id as deal from public.tasks t
         where t.organization_id = $1 and t.id = $2""",
}

_TAG = (("tag", "tag_id"),)
TRIGGERS: dict[str, Trigger] = {
    t.name: t
    for t in (
        Trigger("message.received", "An inbound message arrived", "message"),
        Trigger("conversation.created", "A conversation was opened", "conversation"),
        Trigger("conversation.status_changed", "A conversation's status changed", "conversation"),
        Trigger("conversation.assigned", "A conversation's assignee changed", "conversation"),
        Trigger(
            "conversation.tag_added", "A tag was added to a conversation", "conversation", _TAG
        ),
        Trigger("contact.created", "A contact was created", "contact"),
        Trigger("contact.updated", "A contact's fields changed", "contact"),
        Trigger("contact.tag_added", "A tag was added to a contact", "contact", _TAG),
        Trigger("deal.created", "A deal was created", "deal"),
        Trigger("deal.stage_changed", "A deal moved to another stage", "deal"),
        Trigger("deal.tag_added", "A tag was added to a deal", "deal", _TAG),
        Trigger("task.created", "A task was created", "task"),
        Trigger("task.completed", "A task was completed", "task"),
        Trigger("task.overdue", "An open task passed its due time", "task"),
    )
}
TRIGGERS_DOC = "; ".join(f"`{t.name}`: {t.doc}" for t in TRIGGERS.values())


def records_of(trigger: str) -> tuple[str, ...]:
    """The entities a rule of this trigger may name in its conditions and actions."""
    spec = TRIGGERS[trigger]
    return _ROOT_RECORDS[spec.root] + tuple(name for name, _ in spec.extra)


def roots_of(trigger: str) -> tuple[str, ...]:
    """The records found from a row of the trigger's (a dry run starts from one)."""
    return _ROOT_RECORDS[TRIGGERS[trigger].root]


def from_payload(trigger: str, payload: Mapping[str, Any]) -> dict[str, UUID]:
    """The records an event's payload names (the tag a *.tag_added event added)."""
    found = {}
    for name, key in TRIGGERS[trigger].extra:
        try:
            found[name] = UUID(str(payload[key]))
        except (KeyError, ValueError):
            continue
    return found


def subject(trigger: str, *, taggable: bool = False) -> str:
    """The record an action applies to when it names none."""
    names = records_of(trigger)
    if taggable:
        return next(n for n in names if n in TAGGABLE)
    return names[0]


async def resolve(
    *, conn: Connection, organization_id: UUID, root: str, record_id: UUID
) -> dict[str, UUID]:
    """The ids of a root row's records (absent where there is none, e.g. a deal's contact)."""
    row = await conn.fetchrow(_RESOLVE[root], organization_id, record_id)
    if row is None:
        return {}
    return {k: v for k, v in dict(row).items() if v is not None}
