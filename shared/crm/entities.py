"""The listable entities: their table, the columns a list returns, what can be filtered
and sorted on. One declaration per entity, used by the API and later by audiences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.channels.registry import NAMES
from shared.filters import Catalog, Field, Kind, TagLink
from shared.inbox.statuses import STATUSES
from shared.pagination import SortKey

CHANNELS = NAMES


@dataclass(frozen=True)
class Entity:
    name: str  # singular, as in messages: "contact"
    table: str
    alias: str
    columns: str  # the select list of one row, as the API returns it
    catalog: Catalog  # standard fields; custom fields are added per organization
    sorts: Mapping[str, SortKey]
    default_sort: str
    custom_fields: str | None = None  # the custom_field_entity value, if it has custom fields
    # How a create or PATCH body becomes columns (applied by shared/crm/records.py):
    # a null for one of `keeps_on_null` leaves the column as it is (a NOT NULL column,
    # or custom_fields, where it merges nothing); a null for one of `null_writes`
    # writes that value instead; `merges` are SQL updates that merge the value in
    # ("{}" is its placeholder). Any other null clears the column.
    keeps_on_null: frozenset[str] = frozenset()
    null_writes: Mapping[str, Any] = field(default_factory=dict)
    merges: Mapping[str, str] = field(default_factory=dict)


_MERGE_CUSTOM_FIELDS = {"custom_fields": "custom_fields || {}::jsonb"}


def _fields(
    alias: str, *specs: tuple[str, Kind, str], **choices: tuple[str, ...]
) -> dict[str, Field]:
    """Standard fields: (name, kind, sql type); the column is alias.name."""
    return {
        name: Field(
            name=name,
            kind=kind,
            column=f"{alias}.{name}",
            sql_type=sql_type,
            options=choices.get(name),
            lowercase=name in ("email", "domain"),
        )
        for name, kind, sql_type in specs
    }


def _times(alias: str, *names: str) -> dict[str, SortKey]:
    return {
        name: SortKey(f"{alias}.{name}", "datetime", "timestamptz", nullable=name not in _NOT_NULL)
        for name in names
    }


_NOT_NULL = {"created_at", "updated_at"}
_ID = ("id", Kind.UUID, "uuid")
_CREATED = ("created_at", Kind.DATETIME, "timestamptz")
_UPDATED = ("updated_at", Kind.DATETIME, "timestamptz")


def _tags_of(link: str, column: str, alias: str) -> str:
    """The tags of a row as a JSON list of {id, name, color}, by name."""
    return (
        "(select coalesce(jsonb_agg(jsonb_build_object('id', t.id, 'name', t.name,"
        " 'color', t.color) order by lower(t.name)), '[]'::jsonb)"
        f" from public.{link} l join public.tags t"
        " on t.organization_id = l.organization_id and t.id = l.tag_id"
        f" where l.organization_id = {alias}.organization_id and l.{column} = {alias}.id) as tags"
    )


TAGS_FIELD = Field(name="tags", kind=Kind.TAGS)

CONTACTS = Entity(
    name="contact",
    table="public.contacts",
    alias="c",
    columns=(
        "c.id, c.organization_id, c.name, c.email, c.phone, c.avatar_url, c.company_id,"
        " c.source, c.assignee_id, c.opted_out_channels::text[] as opted_out_channels,"
        " c.custom_fields, c.last_activity_at, c.created_at, c.updated_at, "
        + _tags_of("contact_tags", "contact_id", "c")
    ),
    catalog=Catalog(
        alias="c",
        fields={
            **_fields(
                "c",
                _ID,
                ("name", Kind.TEXT, "text"),
                ("email", Kind.TEXT, "text"),
                ("phone", Kind.TEXT, "text"),
                ("source", Kind.TEXT, "text"),
                ("company_id", Kind.UUID, "uuid"),
                ("assignee_id", Kind.UUID, "uuid"),
                ("opted_out_channels", Kind.CHOICES, "public.channel"),
                ("last_activity_at", Kind.DATETIME, "timestamptz"),
                _CREATED,
                _UPDATED,
                opted_out_channels=CHANNELS,
            ),
            "tags": TAGS_FIELD,
        },
        tags=TagLink("public.contact_tags", "contact_id"),
        custom_column="c.custom_fields",
    ),
    sorts={
        **_times("c", "created_at", "updated_at", "last_activity_at"),
        "name": SortKey("lower(c.name)", "text", "text", nullable=True),
    },
    default_sort="-created_at",
    custom_fields="contact",
    keeps_on_null=frozenset({"opted_out_channels", "custom_fields"}),
    merges=_MERGE_CUSTOM_FIELDS,
)

COMPANIES = Entity(
    name="company",
    table="public.companies",
    alias="co",
    columns=(
        "co.id, co.organization_id, co.name, co.domain, co.phone, co.address,"
        " co.custom_fields, co.assignee_id, co.created_at, co.updated_at"
    ),
    catalog=Catalog(
        alias="co",
        fields=_fields(
            "co",
            _ID,
            ("name", Kind.TEXT, "text"),
            ("domain", Kind.TEXT, "text"),
            ("phone", Kind.TEXT, "text"),
            ("assignee_id", Kind.UUID, "uuid"),
            _CREATED,
            _UPDATED,
        ),
        custom_column="co.custom_fields",
    ),
    sorts={
        **_times("co", "created_at", "updated_at"),
        "name": SortKey("lower(co.name)", "text", "text"),
    },
    default_sort="-created_at",
    custom_fields="company",
    keeps_on_null=frozenset({"name", "custom_fields"}),
    null_writes={"address": {}},
    merges=_MERGE_CUSTOM_FIELDS,
)

DEAL_STATUSES = ("open", "won", "lost")

DEALS = Entity(
    name="deal",
    table="public.deals",
    alias="d",
    columns=(
        "d.id, d.organization_id, d.title, d.value, d.currency, d.probability,"
        " d.expected_close_date, d.pipeline_id, d.stage_id, d.position, d.contact_id,"
        " d.contact_name, d.company_id, d.company_name, d.assignee_id,"
        " d.status::text as status, d.won_at, d.lost_at, d.lost_reason, d.custom_fields,"
        " d.created_by, d.created_at, d.updated_at, " + _tags_of("deal_tags", "deal_id", "d")
    ),
    catalog=Catalog(
        alias="d",
        fields={
            **_fields(
                "d",
                _ID,
                ("title", Kind.TEXT, "text"),
                ("value", Kind.NUMBER, "numeric"),
                ("currency", Kind.TEXT, "text"),
                ("probability", Kind.NUMBER, "numeric"),
                ("expected_close_date", Kind.DATE, "date"),
                ("pipeline_id", Kind.UUID, "uuid"),
                ("stage_id", Kind.UUID, "uuid"),
                ("contact_id", Kind.UUID, "uuid"),
                ("contact_name", Kind.TEXT, "text"),
                ("company_id", Kind.UUID, "uuid"),
                ("company_name", Kind.TEXT, "text"),
                ("assignee_id", Kind.UUID, "uuid"),
                ("status", Kind.CHOICE, "public.deal_status"),
                ("won_at", Kind.DATETIME, "timestamptz"),
                ("lost_at", Kind.DATETIME, "timestamptz"),
                ("lost_reason", Kind.TEXT, "text"),
                _CREATED,
                _UPDATED,
                status=DEAL_STATUSES,
            ),
            "tags": TAGS_FIELD,
        },
        tags=TagLink("public.deal_tags", "deal_id"),
        custom_column="d.custom_fields",
    ),
    sorts={
        **_times("d", "created_at", "updated_at"),
        "value": SortKey("d.value", "number", "numeric", nullable=True),
        "expected_close_date": SortKey("d.expected_close_date", "date", "date", nullable=True),
        "title": SortKey("lower(d.title)", "text", "text"),
    },
    default_sort="-created_at",
    custom_fields="deal",
    keeps_on_null=frozenset(
        {"title", "currency", "status", "probability", "pipeline_id", "stage_id", "custom_fields"}
    ),
    merges=_MERGE_CUSTOM_FIELDS,
)

TASKS = Entity(
    name="task",
    table="public.tasks",
    alias="t",
    columns=(
        "t.id, t.organization_id, t.title, t.description, t.due_at,"
        " t.priority::text as priority, t.status::text as status, t.assignee_id,"
        " t.contact_id, t.deal_id, t.completed_at, t.created_by, t.created_at, t.updated_at"
    ),
    catalog=Catalog(
        alias="t",
        fields=_fields(
            "t",
            _ID,
            ("title", Kind.TEXT, "text"),
            ("description", Kind.TEXT, "text"),
            ("status", Kind.CHOICE, "public.task_status"),
            ("priority", Kind.CHOICE, "public.task_priority"),
            ("due_at", Kind.DATETIME, "timestamptz"),
            ("completed_at", Kind.DATETIME, "timestamptz"),
            ("assignee_id", Kind.UUID, "uuid"),
            ("contact_id", Kind.UUID, "uuid"),
            ("deal_id", Kind.UUID, "uuid"),
            ("created_by", Kind.UUID, "uuid"),
            _CREATED,
            _UPDATED,
            status=("open", "done", "cancelled"),
            priority=("low", "medium", "high", "urgent"),
        ),
    ),
    sorts=_times("t", "due_at", "created_at", "updated_at", "completed_at"),
    default_sort="-created_at",
    keeps_on_null=frozenset({"title", "priority", "status"}),
)

NOTES = Entity(
    name="note",
    table="public.notes",
    alias="n",
    columns=(
        "n.id, n.organization_id, n.body, n.author_id, n.contact_id, n.company_id, n.deal_id,"
        " n.conversation_id, n.created_at, n.updated_at"
    ),
    catalog=Catalog(
        alias="n",
        fields=_fields(
            "n",
            _ID,
            ("body", Kind.TEXT, "text"),
            ("author_id", Kind.UUID, "uuid"),
            ("contact_id", Kind.UUID, "uuid"),
            ("company_id", Kind.UUID, "uuid"),
            ("deal_id", Kind.UUID, "uuid"),
            ("conversation_id", Kind.UUID, "uuid"),
            _CREATED,
            _UPDATED,
        ),
    ),
    sorts=_times("n", "created_at", "updated_at"),
    default_sort="-created_at",
)

TAGS = Entity(
    name="tag",
    table="public.tags",
    alias="g",
    columns="g.id, g.organization_id, g.name, g.color, g.created_at, g.updated_at",
    catalog=Catalog(
        alias="g",
        fields=_fields("g", _ID, ("name", Kind.TEXT, "text"), _CREATED, _UPDATED),
    ),
    sorts={"name": SortKey("lower(g.name)", "text", "text"), **_times("g", "created_at")},
    default_sort="name",
    keeps_on_null=frozenset({"name", "color"}),
)

_CHANNEL_OF_CONVERSATION = (
    "(select a.channel from public.channel_accounts a"
    " where a.organization_id = v.organization_id and a.id = v.channel_account_id)"
)

CONVERSATIONS = Entity(
    name="conversation",
    table="public.conversations",
    alias="v",
    columns=(
        "v.id, v.organization_id, v.contact_id, v.channel_account_id,"
        f" {_CHANNEL_OF_CONVERSATION}::text as channel, v.subject, v.status::text as status,"
        " v.assignee_id, v.snoozed_until, v.last_message_at, v.last_inbound_at, v.unread_count,"
        " v.created_at, v.updated_at, " + _tags_of("conversation_tags", "conversation_id", "v")
    ),
    catalog=Catalog(
        alias="v",
        fields={
            **_fields(
                "v",
                _ID,
                ("contact_id", Kind.UUID, "uuid"),
                ("channel_account_id", Kind.UUID, "uuid"),
                ("assignee_id", Kind.UUID, "uuid"),
                ("status", Kind.CHOICE, "public.conversation_status"),
                ("subject", Kind.TEXT, "text"),
                ("unread_count", Kind.NUMBER, "numeric"),
                ("last_message_at", Kind.DATETIME, "timestamptz"),
                ("last_inbound_at", Kind.DATETIME, "timestamptz"),
                _CREATED,
                _UPDATED,
                status=("open", "pending", "snoozed", "resolved"),
            ),
            "channel": Field(
                name="channel",
                kind=Kind.CHOICE,
                column=_CHANNEL_OF_CONVERSATION,
                sql_type="public.channel",
                options=CHANNELS,
            ),
            "tags": TAGS_FIELD,
        },
        tags=TagLink("public.conversation_tags", "conversation_id"),
    ),
    sorts=_times("v", "last_message_at", "created_at", "updated_at"),
    default_sort="-last_message_at",
)

MESSAGES = Entity(
    name="message",
    table="public.messages",
    alias="m",
    columns=(
        "m.id, m.organization_id, m.conversation_id, m.channel_account_id,"
        " m.direction::text as direction, m.sender_type::text as sender_type, m.sender_id,"
        " m.content_type::text as content_type, m.body, m.attachments,"
        " m.status::text as status, m.error, m.created_at, m.sent_at, m.delivered_at, m.read_at"
    ),
    catalog=Catalog(
        alias="m",
        fields=_fields(
            "m",
            _ID,
            ("direction", Kind.CHOICE, "public.message_direction"),
            ("sender_type", Kind.CHOICE, "public.sender_type"),
            ("content_type", Kind.CHOICE, "public.content_type"),
            ("status", Kind.CHOICE, "public.message_status"),
            ("body", Kind.TEXT, "text"),
            _CREATED,
            direction=("inbound", "outbound"),
            sender_type=("contact", "user", "bot", "system"),
            content_type=(
                "text",
                "image",
                "audio",
                "video",
                "document",
                "location",
                "sticker",
                "contacts",
                "template",
                "interactive",
                "unsupported",
            ),
            status=STATUSES,
        ),
    ),
    sorts=_times("m", "created_at"),
    default_sort="created_at",
)

PIPELINES = Entity(
    name="pipeline",
    table="public.pipelines",
    alias="p",
    columns=(
        "p.id, p.organization_id, p.name, p.position, p.is_default, p.created_at, p.updated_at,"
        " (select coalesce(jsonb_agg(jsonb_build_object('id', s.id, 'name', s.name,"
        " 'position', s.position, 'probability', s.probability, 'kind', s.kind)"
        " order by s.position, s.created_at, s.id), '[]'::jsonb)"
        " from public.stages s where s.organization_id = p.organization_id"
        " and s.pipeline_id = p.id) as stages"
    ),
    catalog=Catalog(
        alias="p",
        fields=_fields(
            "p",
            _ID,
            ("name", Kind.TEXT, "text"),
            ("is_default", Kind.BOOLEAN, "boolean"),
            _CREATED,
            _UPDATED,
        ),
    ),
    sorts={"position": SortKey("p.position", "number", "numeric"), **_times("p", "created_at")},
    default_sort="position",
)
