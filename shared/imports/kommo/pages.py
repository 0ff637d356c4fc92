"""One page of Kommo companies, contacts, leads, notes or tasks, into ConnectGain.

Each writer turns the page into rows (mapping.py), writes them set-based
(store.py) and says what it created, updated and skipped, with reasons.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.imports.kommo import activity, mapping, store
from shared.imports.kommo.mapping import FieldDef


@dataclass
class Context:
    """What every page of a run needs: who, the users, fields and stages matched so far."""

    org: UUID
    job: UUID
    users: dict[int, UUID] = field(default_factory=dict)  # Kommo user → member
    fields: dict[str, dict[int, FieldDef]] = field(default_factory=dict)  # entity → id → def
    stages: dict[str, tuple[UUID, UUID]] = field(default_factory=dict)  # "pid:sid" → ids
    currency: str = "USD"
    region: str | None = None
    task_types: dict[int, str] = field(default_factory=lambda: dict(activity.TASK_TYPES))


@dataclass
class PageResult:
    created: int = 0
    updated: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, record: dict[str, Any], reason: str) -> None:
        self.skipped.append({"id": record.get("id"), "reason": reason})


def _id(record: dict[str, Any]) -> str | None:
    value = record.get("id")
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _with_ids(
    items: list[dict[str, Any]], result: PageResult
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(Kommo id, record) of the page's records; one without an id is skipped."""
    for item in items:
        if (ext := _id(item)) is None:
            result.skip(item, "no id")
        else:
            yield ext, item


async def _tag(
    conn: Connection, ctx: Context, written: store.Written, tags: dict[str, list[str]], table: str
) -> None:
    links = [{"id": written.ids[e], "tag": t} for e, names in tags.items() for t in names]
    column = {"contact_tags": "contact_id", "deal_tags": "deal_id"}[table]
    await store.tag(conn, org=ctx.org, table=table, column=column, links=links)


def _fields(
    ctx: Context, entity: str, record: dict[str, Any], result: PageResult
) -> dict[str, Any]:
    values, dropped = mapping.custom_fields(record, ctx.fields.get(entity, {}))
    for label in dropped:
        result.skip(record, f"the value of custom field {label!r} could not be converted")
    return values


def _user(ctx: Context, value: Any) -> UUID | None:
    return ctx.users.get(value) if isinstance(value, int) else None


def _unique(rows: list[dict[str, Any]], *columns: str) -> None:
    """A phone, e-mail or domain goes to the first record of the page that has it."""
    for column in columns:
        seen: set[str] = set()
        for row in rows:
            if row[column] in seen:
                row[column] = None
            elif row[column] is not None:
                seen.add(row[column])


async def _write(
    conn: Connection, ctx: Context, entity: str, rows: list[dict[str, Any]], result: PageResult
) -> store.Written:
    written = await store.upsert(conn, entity, org=ctx.org, job=ctx.job, rows=rows)
    result.created += written.created
    result.updated += written.updated
    return written


async def companies(conn: Connection, ctx: Context, items: list[dict[str, Any]]) -> PageResult:
    result = PageResult()
    rows = []
    for ext, item in _with_ids(items, result):
        rows.append(
            {
                "ext": ext,
                "name": (str(item.get("name") or "").strip() or f"Kommo company {ext}")[:200],
                "domain": mapping.domain(item),
                "phone": mapping.first_phone(item, ctx.region),
                "custom_fields": _fields(ctx, "company", item, result),
                "assignee_id": _user(ctx, item.get("responsible_user_id")),
            }
        )
    _unique(rows, "domain")
    await _write(conn, ctx, "company", rows, result)
    return result


async def contacts(conn: Connection, ctx: Context, items: list[dict[str, Any]]) -> PageResult:
    result = PageResult()
    rows = []
    tags: dict[str, list[str]] = {}
    for ext, item in _with_ids(items, result):
        phones = mapping.multitext(item, "PHONE")
        number = mapping.first_phone(item, ctx.region)
        if phones and number is None:
            result.skip(item, "no valid phone number among " + ", ".join(v for v, _ in phones))
        name = (
            str(item.get("name") or "").strip()
            or " ".join(str(item.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
        )
        companies_of = mapping.embedded_ids(item, "companies")
        rows.append(
            {
                "ext": ext,
                "name": name or None,
                "email": mapping.first_email(item),
                "phone": number,
                "custom_fields": _fields(ctx, "contact", item, result),
                "assignee_id": _user(ctx, item.get("responsible_user_id")),
                "company": str(companies_of[0]) if companies_of else None,
            }
        )
        tags[ext] = mapping.tags(item)
    _unique(rows, "email", "phone")
    written = await _write(conn, ctx, "contact", rows, result)
    await _tag(conn, ctx, written, tags, "contact_tags")
    return result


async def leads(conn: Connection, ctx: Context, items: list[dict[str, Any]]) -> PageResult:
    result = PageResult()
    rows = []
    tags: dict[str, list[str]] = {}
    for ext, item in _with_ids(items, result):
        status = item.get("status_id")
        stage = ctx.stages.get(f"{item.get('pipeline_id')}:{status}")
        if stage is None:
            result.skip(
                item, f"its stage {status} of pipeline {item.get('pipeline_id')} is unknown"
            )
            continue
        price = item.get("price")
        contacts_of = mapping.embedded_ids(item, "contacts")
        companies_of = mapping.embedded_ids(item, "companies")
        rows.append(
            {
                "ext": ext,
                "title": (str(item.get("name") or "").strip() or f"Kommo lead {ext}")[:200],
                "value": price if isinstance(price, int | float) and price >= 0 else None,
                "currency": ctx.currency,
                "pipeline_id": stage[0],
                "stage_id": stage[1],
                "assignee_id": _user(ctx, item.get("responsible_user_id")),
                "lost_reason": mapping.loss_reason(item) if status == mapping.LOST else None,
                "closed_at": mapping.moment(item.get("closed_at")),
                "custom_fields": _fields(ctx, "deal", item, result),
                "contact": str(contacts_of[0]) if contacts_of else None,
                "company": str(companies_of[0]) if companies_of else None,
            }
        )
        tags[ext] = mapping.tags(item)
    written = await _write(conn, ctx, "lead", rows, result)
    await _tag(conn, ctx, written, tags, "deal_tags")
    return result


# Kommo's note lists → the column and table of the record a note is about
NOTE_PARENTS = {
    "leads": ("lead", "deals", "deal_id"),
    "contacts": ("contact", "contacts", "contact_id"),
    "companies": ("company", "companies", "company_id"),
}


async def notes(
    conn: Connection, ctx: Context, items: list[dict[str, Any]], *, of: str
) -> PageResult:
    result = PageResult()
    entity, table, column = NOTE_PARENTS[of]
    parents = await store.lookup(
        conn,
        org=ctx.org,
        entity=entity,
        table=table,
        ids=[str(i.get("entity_id")) for i in items if i.get("entity_id")],
    )
    rows = []
    for ext, item in _with_ids(items, result):
        parent = parents.get(str(item.get("entity_id")))
        body = activity.note_body(item)
        if body is None:
            result.skip(item, f"note type {item.get('note_type')!r} is not imported")
        elif not body:
            result.skip(item, "the note is empty")
        elif parent is None:
            result.skip(item, f"its {entity} {item.get('entity_id')} was not imported")
        else:
            row = {
                "ext": ext,
                "body": body,
                "author_id": _user(ctx, item.get("created_by")),
                "contact_id": None,
                "company_id": None,
                "deal_id": None,
                "created_at": mapping.moment(item.get("created_at")),
            }
            row[column] = parent
            rows.append(row)
    await _write(conn, ctx, "note", rows, result)
    return result


async def tasks(conn: Connection, ctx: Context, items: list[dict[str, Any]]) -> PageResult:
    result = PageResult()
    wanted = {
        kind: [
            str(i["entity_id"])
            for i in items
            if i.get("entity_type") == kind and i.get("entity_id")
        ]
        for kind in ("leads", "contacts")
    }
    deals = await store.lookup(conn, org=ctx.org, entity="lead", table="deals", ids=wanted["leads"])
    people = await store.lookup(
        conn, org=ctx.org, entity="contact", table="contacts", ids=wanted["contacts"]
    )
    rows = []
    for ext, item in _with_ids(items, result):
        title, kind = activity.task_title(item, ctx.task_types)
        done = bool(item.get("is_completed"))
        target = str(item.get("entity_id"))
        rows.append(
            {
                "ext": ext,
                "title": title,
                "description": activity.task_description(item, kind),
                "due_at": mapping.moment(item.get("complete_till")),
                "status": "done" if done else "open",
                "assignee_id": _user(ctx, item.get("responsible_user_id")),
                "contact_id": people.get(target) if item.get("entity_type") == "contacts" else None,
                "deal_id": deals.get(target) if item.get("entity_type") == "leads" else None,
                "completed_at": mapping.moment(item.get("updated_at")) if done else None,
                "created_at": mapping.moment(item.get("created_at")),
            }
        )
    await _write(conn, ctx, "task", rows, result)
    return result
