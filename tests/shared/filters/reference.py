"""A fixed data set of contacts, held both in the database and as Python rows, and the
filter language evaluated in plain Python: the reference the SQL compiler must agree with."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from shared.db import Connection
from shared.filters import Condition, Group, Kind, Node, Op, TagRef
from tests.support_crm import define_field, make_company, make_tag, tag

CUSTOM_FIELDS = [
    ("plan", "select", ["free", "pro", "team"]),
    ("langs", "multiselect", ["en", "pt", "fr"]),
    ("seats", "number", None),
    ("renews_on", "date", None),
    ("last_seen", "datetime", None),
    ("vip", "boolean", None),
    ("nickname", "text", None),
    ("billing_email", "email", None),
]
TAG_NAMES = ["VIP", "lead", "Churned"]
# text with LIKE and regex metacharacters, which must be plain data
WORDS = ["ana", "Bruno", "carla 50%", "d_e", "back\\slash", "Ana Lima", "o'hara", ""]
SOURCES = ["whatsapp", "import", "Web Form", None]
BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class DataSet:
    org: UUID
    companies: list[UUID]
    tags: dict[str, UUID]
    rows: list[dict[str, Any]] = field(default_factory=list)  # Python view, by field name


def _maybe(rng: random.Random, value: Any, chance: float = 0.25) -> Any:
    return None if rng.random() < chance else value


async def build(db: Connection, org: UUID, size: int = 40, seed: int = 11) -> DataSet:
    rng = random.Random(seed)
    for key, type_, options in CUSTOM_FIELDS:
        await define_field(db, org, "contact", key, type_, options=options)
    data = DataSet(
        org=org,
        companies=[await make_company(db, org) for _ in range(2)],
        tags={name: await make_tag(db, org, name) for name in TAG_NAMES},
    )
    for i in range(size):
        custom: dict[str, Any] = {
            "plan": _maybe(rng, rng.choice(["free", "pro", "team"])),
            "langs": _maybe(rng, sorted(rng.sample(["en", "pt", "fr"], rng.randint(1, 3)))),
            "seats": _maybe(rng, rng.choice([0, 1, 2.5, 10, -3, 7])),
            "renews_on": _maybe(
                rng, (date(2026, 1, 1) + timedelta(days=rng.randint(0, 9))).isoformat()
            ),
            "last_seen": _maybe(
                rng,
                BASE
                + timedelta(
                    minutes=rng.randint(0, 30), microseconds=rng.choice([0, 1500, 999_999])
                ),
            ),
            "vip": _maybe(rng, rng.random() < 0.5),
            "nickname": _maybe(rng, rng.choice(WORDS[:-1])),
            "billing_email": _maybe(rng, f"bill{rng.randint(0, 3)}@acme.example"),
        }
        stored = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in custom.items()
            if v is not None
        }
        row = {
            "name": _maybe(rng, rng.choice(WORDS)),
            "email": _maybe(rng, f"person{i}@example.com"),
            "phone": _maybe(rng, f"+35191{i:07d}"),
            "source": rng.choice(SOURCES),
            "company_id": _maybe(rng, rng.choice(data.companies), 0.4),
            "opted_out_channels": sorted(
                set(rng.sample(["sms", "email", "whatsapp"], rng.randint(0, 2)))
            ),
            "created_at": BASE + timedelta(hours=rng.randint(0, 5), microseconds=rng.randint(0, 9)),
            "last_activity_at": _maybe(rng, BASE + timedelta(minutes=rng.randint(0, 30))),
        }
        contact = await db.fetchval(
            "insert into contacts (organization_id, name, email, phone, source, company_id,"
            " opted_out_channels, created_at, last_activity_at, custom_fields)"
            " values ($1, $2, $3, $4, $5, $6, $7::public.channel[], $8, $9, $10) returning id",
            org,
            *row.values(),
            stored,
        )
        tags = rng.sample(TAG_NAMES, rng.randint(0, 2))
        for name in tags:
            await tag(db, org, "contact_tags", "contact_id", contact, data.tags[name])
        row.update(
            id=contact,
            tags={(data.tags[name], name.lower()) for name in tags},
            custom={k: _typed(k, v) for k, v in custom.items() if v is not None},
        )
        data.rows.append(row)
    return data


def _typed(key: str, value: Any) -> Any:
    """A custom value as the database holds it, in Python terms."""
    if key == "seats":
        return Decimal(str(value))
    if key == "renews_on":
        return date.fromisoformat(value)
    if key == "last_seen":
        return _to_millis(value)
    if key == "langs":
        return set(value)
    return value


def _to_millis(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


# ---- the reference evaluation ---------------------------------------------------------------


def matches(node: Node, row: dict[str, Any]) -> bool:
    if isinstance(node, Group):
        results = [matches(child, row) for child in node.children]
        return all(results) if node.conjunction == "and" else any(results)
    return _condition(node, row)


def _condition(c: Condition, row: dict[str, Any]) -> bool:
    negated = {Op.NEQ: Op.EQ, Op.NIN: Op.IN, Op.IS_NOT_SET: Op.IS_SET}
    if c.op in negated:
        return not _condition(Condition(c.field, negated[c.op], c.value), row)
    if c.field.kind is Kind.TAGS:
        return _tags(c.op, c.value, row["tags"])
    if c.field.custom_key is not None:
        value = row["custom"].get(c.field.custom_key)
        wanted = c.value
        if c.field.kind is Kind.DATETIME and wanted is not None:
            wanted = (
                tuple(map(_to_millis, wanted)) if isinstance(wanted, tuple) else _to_millis(wanted)
            )
    else:
        value, wanted = row[c.field.name], c.value
    if c.op is Op.IS_SET:
        return value is not None and value != "" and value != [] and value != set()
    if value is None:
        return False
    if c.field.kind is Kind.CHOICES:
        members = set(value)
        return set(wanted) <= members if c.op is Op.CONTAINS else bool(members & set(wanted))
    if c.field.kind is Kind.TEXT:
        text: str = value.lower()
        wanted_text: Any = wanted
        if c.op is Op.EQ:
            return bool(text == wanted_text.lower())
        if c.op is Op.IN:
            return text in {w.lower() for w in wanted_text}
        if c.op is Op.CONTAINS:
            return wanted_text.lower() in text
        assert c.op is Op.STARTS_WITH
        return text.startswith(wanted_text.lower())
    if c.op is Op.EQ:
        return bool(value == wanted)
    if c.op is Op.IN:
        return value in wanted
    if c.op is Op.BETWEEN:
        return bool(wanted[0] <= value <= wanted[1])
    compare = {
        Op.GT: value > wanted,
        Op.GTE: value >= wanted,
        Op.LT: value < wanted,
        Op.LTE: value <= wanted,
    }
    return bool(compare[c.op])


def _tags(op: Op, ref: TagRef | None, tags: set[tuple[UUID, str]]) -> bool:
    if op is Op.IS_SET:
        return bool(tags)
    assert ref is not None
    names = {n.lower() for n in ref.names}
    return any(tag_id in ref.ids or name in names for tag_id, name in tags)
