"""What every run reads first, whole: the account (currency, country, task types),
its users (matched to members by e-mail, never invented), custom field
definitions and pipelines with their stages. They are small, so a resumed run
reads them again rather than keeping them; their writes are idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.imports.kommo import mapping, store
from shared.imports.kommo.client import KommoClient
from shared.imports.kommo.pages import Context


@dataclass
class Setup:
    account: dict[str, Any] = field(default_factory=dict)
    users: list[dict[str, Any]] = field(default_factory=list)
    fields: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (entity, raw)
    pipelines: list[dict[str, Any]] = field(default_factory=list)


async def read(client: KommoClient) -> Setup:
    """Everything setup needs, from Kommo (before any transaction opens)."""
    found = Setup()
    found.account = await client.get("account", params={"with": "task_types"}) or {}
    async for _page, items, _more in client.pages("users", "users"):
        found.users.extend(items)
    for entity in ("leads", "contacts", "companies"):
        async for _page, items, _more in client.pages(f"{entity}/custom_fields", "custom_fields"):
            found.fields.extend((entity, item) for item in items)
    body = await client.get("leads/pipelines") or {}
    found.pipelines = [
        p for p in (body.get("_embedded") or {}).get("pipelines") or [] if isinstance(p, dict)
    ]
    return found


def _kind(status_id: Any) -> str:
    return {mapping.WON: "won", mapping.LOST: "lost"}.get(status_id, "open")


async def apply(conn: Connection, ctx: Context, found: Setup) -> dict[str, Any]:
    """Write the definitions and pipelines, fill `ctx`; what to report about them."""
    currency = str(found.account.get("currency") or "")
    if len(currency) == 3 and currency.isalpha() and currency.isupper():
        ctx.currency = currency
    country = found.account.get("country")
    ctx.region = country.upper() if isinstance(country, str) and len(country) == 2 else None
    for kind in (found.account.get("_embedded") or {}).get("task_types") or []:
        if isinstance(kind, dict) and isinstance(kind.get("id"), int) and kind.get("name"):
            ctx.task_types[kind["id"]] = str(kind["name"])[:100]

    emails = {
        u["id"]: mapping.email(u["email"])
        for u in found.users
        if isinstance(u.get("id"), int) and isinstance(u.get("email"), str)
    }
    members = await store.members_by_email(
        conn, org=ctx.org, emails=[e for e in emails.values() if e]
    )
    ctx.users = {uid: members[e] for uid, e in emails.items() if e in members}
    unmatched = [
        {"id": u.get("id"), "name": u.get("name"), "email": u.get("email")}
        for u in found.users
        if u.get("id") not in ctx.users
    ]

    definitions, unmappable = [], []
    for entity, raw in found.fields:
        if not isinstance(raw.get("id"), int):
            continue
        definition, unmapped = mapping.field_def(raw, entity)
        definitions.append(definition)
        if unmapped:
            unmappable.append(
                {
                    "entity": entity,
                    "id": raw["id"],
                    "name": raw.get("name"),
                    "type": raw.get("type"),
                    "imported_as": "text",
                }
            )
    stored = await store.upsert_fields(conn, org=ctx.org, job=ctx.job, fields=definitions)
    ctx.fields = {}
    for definition in stored:
        ctx.fields.setdefault(definition.entity, {})[definition.kommo_id] = definition

    pipelines = [
        {
            "ext": str(p["id"]),
            "name": (str(p.get("name") or "").strip() or "Kommo")[:100],
            "position": int(p.get("sort") or 0),
        }
        for p in found.pipelines
        if isinstance(p.get("id"), int)
    ]
    written = await store.upsert(conn, "pipeline", org=ctx.org, job=ctx.job, rows=pipelines)
    stages: list[dict[str, Any]] = []
    for p in found.pipelines:
        pipeline = written.ids.get(str(p.get("id")))
        for s in (p.get("_embedded") or {}).get("statuses") or []:
            if pipeline is None or not isinstance(s, dict) or not isinstance(s.get("id"), int):
                continue
            stages.append(
                {
                    "ext": f"{p['id']}:{s['id']}",
                    "pipeline_id": pipeline,
                    "name": (str(s.get("name") or "").strip() or f"Stage {s['id']}")[:100],
                    "position": int(s.get("sort") or 0),
                    "kind": _kind(s["id"]),
                }
            )
    placed = await store.upsert(conn, "stage", org=ctx.org, job=ctx.job, rows=stages)
    pipeline_of: dict[str, UUID] = {s["ext"]: s["pipeline_id"] for s in stages}
    ctx.stages = {ext: (pipeline_of[ext], stage) for ext, stage in placed.ids.items()}
    return {
        "counts": {
            "users": {"matched": len(ctx.users), "unmatched": len(unmatched)},
            "custom_fields": {"imported": len(stored), "as_text": len(unmappable)},
            "pipelines": {"created": written.created, "updated": written.updated},
            "stages": {"created": placed.created, "updated": placed.updated},
        },
        "unmatched_users": unmatched,
        "unmappable_fields": unmappable,
    }
