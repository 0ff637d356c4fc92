"""Tags: the organization's labels, and applying them to contacts, deals and conversations.

Callers name tags by name or by id. A name that does not exist yet creates the
tag (names are unique whatever their case, so "vip" finds "VIP"); an id must
be one of the organization's tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from shared.crm.entities import TAGS, Entity
from shared.crm.inputs import Color, Strict, TagName, changes, fields_of
from shared.crm.records import delete_record, get_record, insert_record, update_record
from shared.db import Connection
from shared.errors import NotFound, Unprocessable
from shared.filters import TagLink


class TagCreate(Strict):
    name: TagName
    color: Color = "#64748b"


class TagUpdate(Strict):
    name: TagName | None = None
    color: Color | None = None


def _link(entity: Entity) -> TagLink:
    link = entity.catalog.tags
    assert link is not None, f"{entity.name} cannot be tagged"
    return link


def _split(refs: list[str]) -> tuple[list[UUID], list[str]]:
    ids: list[UUID] = []
    names: list[str] = []
    for ref in refs:
        try:
            ids.append(UUID(ref))
        except ValueError:
            names.append(ref)
    return ids, names


async def resolve_tags(*, conn: Connection, organization_id: UUID, refs: list[str]) -> list[UUID]:
    """The ids of the tags named by `refs`, creating tags for new names."""
    ids, names = _split(refs)
    if ids:
        known = {
            r["id"]
            for r in await conn.fetch(
                "select id from public.tags where organization_id = $1 and id = any($2::uuid[])",
                organization_id,
                ids,
            )
        }
        if missing := [str(i) for i in ids if i not in known]:
            message = f"tags: no tag with id {', '.join(missing)}"
            raise Unprocessable(message, details=[{"field": "tags", "message": message}])
    if names:
        await conn.execute(
            "insert into public.tags (organization_id, name)"
            " select $1, n from unnest($2::text[]) n"
            " on conflict (organization_id, lower(name)) do nothing",
            organization_id,
            list(dict.fromkeys(names)),
        )
        rows = await conn.fetch(
            "select id from public.tags where organization_id = $1"
            " and lower(name) in (select lower(n) from unnest($2::text[]) n)",
            organization_id,
            names,
        )
        ids += [r["id"] for r in rows]
    return list(dict.fromkeys(ids))


async def set_tags(
    *, conn: Connection, organization_id: UUID, entity: Entity, record_id: UUID, refs: list[str]
) -> None:
    """Make the record's tags exactly `refs`."""
    link = _link(entity)
    tag_ids = await resolve_tags(conn=conn, organization_id=organization_id, refs=refs)
    await conn.execute(
        f"delete from {link.table} where organization_id = $1 and {link.column} = $2"
        " and tag_id <> all($3::uuid[])",
        organization_id,
        record_id,
        tag_ids,
    )
    await _link_tags(conn, link, organization_id, record_id, tag_ids)


async def insert_tagged(
    *,
    conn: Connection,
    organization_id: UUID,
    entity: Entity,
    columns: Mapping[str, Any],
    tags: list[str] | None,
) -> dict[str, Any]:
    """Insert a taggable record with its tags; the record as it reads back."""
    record_id = await insert_record(
        conn=conn, entity=entity, organization_id=organization_id, values=columns
    )
    # a new record has no tags to clear: no tags, no tag queries
    return await _retag_and_read(conn, organization_id, entity, record_id, tags or None)


async def update_tagged(
    *,
    conn: Connection,
    organization_id: UUID,
    entity: Entity,
    record_id: UUID,
    columns: Mapping[str, Any],
    tags: list[str] | None,
) -> dict[str, Any]:
    """Update a taggable record: its custom_fields merge (a null value removes one), its tags
    become `tags` unless that is None; the record as it reads back."""
    await update_record(
        conn=conn,
        entity=entity,
        organization_id=organization_id,
        record_id=record_id,
        values=columns,
    )
    return await _retag_and_read(conn, organization_id, entity, record_id, tags)


async def _retag_and_read(
    conn: Connection, organization_id: UUID, entity: Entity, record_id: UUID, tags: list[str] | None
) -> dict[str, Any]:
    if tags is not None:
        await set_tags(
            conn=conn,
            organization_id=organization_id,
            entity=entity,
            record_id=record_id,
            refs=tags,
        )
    return await get_record(
        conn=conn, entity=entity, organization_id=organization_id, record_id=record_id
    )


async def add_tags(
    *, conn: Connection, organization_id: UUID, entity: Entity, record_id: UUID, refs: list[str]
) -> None:
    await get_record(conn=conn, entity=entity, organization_id=organization_id, record_id=record_id)
    tag_ids = await resolve_tags(conn=conn, organization_id=organization_id, refs=refs)
    await _link_tags(conn, _link(entity), organization_id, record_id, tag_ids)


async def remove_tag(
    *, conn: Connection, organization_id: UUID, entity: Entity, record_id: UUID, ref: str
) -> None:
    """Take a tag (by name or id) off a record; 404 when the record or tag is unknown."""
    await get_record(conn=conn, entity=entity, organization_id=organization_id, record_id=record_id)
    ids, names = _split([ref])
    tag_id = await conn.fetchval(
        "select id from public.tags where organization_id = $1"
        " and (id = any($2::uuid[]) or lower(name) = lower($3))",
        organization_id,
        ids,
        names[0] if names else None,
    )
    if tag_id is None:
        raise NotFound("No such tag")
    link = _link(entity)
    await conn.execute(
        f"delete from {link.table} where organization_id = $1 and {link.column} = $2"
        " and tag_id = $3",
        organization_id,
        record_id,
        tag_id,
    )


async def _link_tags(
    conn: Connection, link: TagLink, organization_id: UUID, record_id: UUID, tag_ids: list[UUID]
) -> None:
    await conn.execute(
        f"insert into {link.table} (organization_id, {link.column}, tag_id)"
        " select $1, $2, t from unnest($3::uuid[]) t on conflict do nothing",
        organization_id,
        record_id,
        tag_ids,
    )


# ---- the tags themselves --------------------------------------------------------------------


async def create_tag(*, conn: Connection, organization_id: UUID, data: TagCreate) -> dict[str, Any]:
    tag_id = await insert_record(
        conn=conn, entity=TAGS, organization_id=organization_id, values=fields_of(data)
    )
    return await get_record(
        conn=conn, entity=TAGS, organization_id=organization_id, record_id=tag_id
    )


async def update_tag(
    *, conn: Connection, organization_id: UUID, tag_id: UUID, data: TagUpdate
) -> dict[str, Any]:
    await update_record(
        conn=conn,
        entity=TAGS,
        organization_id=organization_id,
        record_id=tag_id,
        values=changes(data),
    )
    return await get_record(
        conn=conn, entity=TAGS, organization_id=organization_id, record_id=tag_id
    )


async def get_tag(*, conn: Connection, organization_id: UUID, tag_id: UUID) -> dict[str, Any]:
    return await get_record(
        conn=conn, entity=TAGS, organization_id=organization_id, record_id=tag_id
    )


async def delete_tag(*, conn: Connection, organization_id: UUID, tag_id: UUID) -> None:
    """Delete a tag; it comes off every contact, deal and conversation."""
    await delete_record(conn=conn, entity=TAGS, organization_id=organization_id, record_id=tag_id)
