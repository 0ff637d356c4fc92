"""The compiled SQL selects exactly the rows the reference evaluation in Python selects.

One database with a fixed data set per test; Hypothesis generates filters (as a
caller would write them) over every kind of field and operator, and each one is
run against that data set under RLS, as a member of the organization.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.crm.entities import CONTACTS
from shared.db import Connection
from shared.filters import OPS, Catalog, Kind, Op, compile_filter, parse_filter
from shared.runtime import Runtime
from shared.sql import Params
from tests.shared.filters.reference import BASE, CUSTOM_FIELDS, DataSet, build, matches
from tests.support import make_org, make_user, member, principal

SKIP_FIELDS = {"updated_at", "assignee_id"}  # not in the Python rows; other fields cover the kinds


@pytest.fixture
async def dataset(db: Connection) -> DataSet:
    return await build(db, await make_org(db, await make_user(db)))


def catalog() -> Catalog:
    return CONTACTS.catalog.with_custom_fields(
        {"key": key, "type": type_, "options": options} for key, type_, options in CUSTOM_FIELDS
    )


async def run_sql(runtime: Runtime, user: UUID, org: UUID, raw: Any) -> set[UUID]:
    node = parse_filter(raw, catalog())
    params = Params(org)
    where = compile_filter(node, catalog(), params)
    async with runtime.db.user_tx(principal(user)) as conn:
        rows = await conn.fetch(
            f"select c.id from public.contacts c where c.organization_id = $1 and {where}",
            *params.values,
        )
    return {r["id"] for r in rows}


def expected(data: DataSet, raw: Any) -> set[UUID]:
    node = parse_filter(raw, catalog())
    return {row["id"] for row in data.rows if node is None or matches(node, row)}


# ---- generating filters a caller could write ---------------------------------------------------


def _case(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda flips: "".join(
            c.upper() if f else c.lower() for c, f in zip(text, flips, strict=True)
        )
    )


def _piece(text: str) -> st.SearchStrategy[str]:
    """A non-empty piece of `text`, often its start."""
    return st.tuples(st.integers(0, len(text) - 1), st.integers(1, len(text))).map(
        lambda ij: text[min(ij[0], ij[1] - 1) : ij[1]]
    ) | st.integers(1, len(text)).map(lambda n: text[:n])


def _values(kind: Kind, name: str, data: DataSet) -> st.SearchStrategy[Any]:
    """One value of a field: mostly near what the data set holds, sometimes not."""
    fields = catalog().fields
    if kind is Kind.TEXT:
        seen = [str(v) for v in _seen(name, data) if v]
        return st.one_of(
            st.sampled_from(seen).flatmap(_piece).flatmap(_case),
            st.text(alphabet="abn%_\\' ", max_size=4),
        )
    if kind is Kind.NUMBER:
        return st.sampled_from([-3, 0, 1, 2, 2.5, 3, 7, 10, 11])
    if kind is Kind.DATE:
        return st.integers(-1, 10).map(lambda d: (date(2026, 1, 1) + timedelta(days=d)).isoformat())
    if kind is Kind.DATETIME:
        moments = st.tuples(
            st.integers(-5, 6 * 60),
            st.sampled_from([0, 1000, 1500, 999_999]),
            st.sampled_from(["Z", "+01:00", ""]),
        )
        return moments.map(lambda t: _iso(BASE + timedelta(minutes=t[0], microseconds=t[1]), t[2]))
    if kind is Kind.BOOLEAN:
        return st.booleans()
    if kind in (Kind.CHOICE, Kind.CHOICES):
        options = fields[name].options
        assert options is not None
        return st.sampled_from(options)
    if kind is Kind.UUID:
        return st.one_of(st.sampled_from([str(c) for c in data.companies]), st.just(str(uuid4())))
    assert kind is Kind.TAGS
    return st.one_of(
        st.sampled_from(list(data.tags)).flatmap(_case),
        st.sampled_from([str(t) for t in data.tags.values()]),
        st.just("no-such-tag"),
    )


def _iso(moment: datetime, offset: str) -> str:
    """The same moment written as a caller might: Z, an offset, or no offset (UTC)."""
    if offset == "+01:00":
        return moment.astimezone(timezone(timedelta(hours=1))).isoformat()
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + offset


def _moment(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _seen(name: str, data: DataSet) -> list[Any]:
    if name.startswith("custom_fields."):
        return [row["custom"].get(name.split(".", 1)[1]) for row in data.rows]
    return [row.get(name) for row in data.rows]


@st.composite
def conditions(draw: st.DrawFn, data: DataSet) -> dict[str, Any]:
    fields = {n: f for n, f in catalog().fields.items() if n not in SKIP_FIELDS}
    # every kind (then every field of it) equally often, however many fields each kind has
    kind = draw(st.sampled_from(sorted({f.kind for f in fields.values()})))
    name = draw(st.sampled_from(sorted(n for n, f in fields.items() if f.kind is kind)))
    op = draw(st.sampled_from(sorted(OPS[kind])))
    event(f"{kind}")
    values = _values(kind, name, data)
    value: Any
    if op in (Op.IS_SET, Op.IS_NOT_SET):
        return {"field": name, "op": op.value}
    if op is Op.BETWEEN:
        low, high = sorted(draw(st.lists(values, min_size=2, max_size=2)), key=_order_key(kind))
        value = [low, high]
    elif op in (Op.IN, Op.NIN, Op.HAS_ANY_TAG) or (op is Op.CONTAINS and kind is Kind.CHOICES):
        value = draw(st.lists(values, min_size=1, max_size=3))
    else:
        value = draw(values)
    return {"field": name, "op": op.value, "value": value}


def _order_key(kind: Kind) -> Any:
    return _moment if kind is Kind.DATETIME else (lambda v: v)


def filters(data: DataSet) -> st.SearchStrategy[Any]:
    return st.recursive(
        conditions(data),
        lambda children: st.tuples(
            st.sampled_from(["and", "or"]), st.lists(children, max_size=3)
        ).map(lambda group: {group[0]: group[1]}),
        max_leaves=6,
    )


@pytest.fixture
async def agent(db: Connection, dataset: DataSet) -> UUID:
    return await member(db, dataset.org, "agent")


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=st.data())
async def test_sql_agrees_with_the_reference(
    raw: st.DataObject, dataset: DataSet, agent: UUID, runtime: Runtime
):
    tree = raw.draw(filters(dataset))
    found = await run_sql(runtime, agent, dataset.org, tree)
    event(
        "matches: "
        + ("none" if not found else "all" if len(found) == len(dataset.rows) else "some")
    )
    assert await run_sql(runtime, agent, dataset.org, tree) == expected(dataset, tree), tree


# ---- every field with every operator, deterministically -----------------------------------------


def _samples(kind: Kind, name: str, data: DataSet) -> list[Any]:
    """A few values of a field: one held by the data set, in other cases, a piece, a miss."""
    if kind is Kind.TEXT:
        held = sorted({str(v) for v in _seen(name, data) if v})[0]
        return [held, held.upper(), held[1:3] or held, "zz-none"]
    if kind is Kind.NUMBER:
        return [0, 2.5, 7]
    if kind is Kind.DATE:
        return ["2026-01-03", "2026-01-07"]
    if kind is Kind.DATETIME:
        return [
            _iso(BASE + timedelta(minutes=5), "Z"),
            _iso(BASE + timedelta(minutes=3, microseconds=1500), "+01:00"),
            _iso(BASE + timedelta(hours=3), ""),
        ]
    if kind is Kind.BOOLEAN:
        return [True, False]
    if kind in (Kind.CHOICE, Kind.CHOICES):
        return list(catalog().fields[name].options or ())
    if kind is Kind.UUID:
        return [str(data.companies[0]), str(uuid4())]
    return ["vip", "LEAD", str(data.tags["Churned"]), "nope"]


def sweep(data: DataSet) -> list[dict[str, Any]]:
    conditions: list[dict[str, Any]] = []
    for name, field in sorted(catalog().fields.items()):
        if name in SKIP_FIELDS:
            continue
        samples = _samples(field.kind, name, data)
        for op in sorted(OPS[field.kind]):
            if op in (Op.IS_SET, Op.IS_NOT_SET):
                values: list[Any] = [None]
            elif op is Op.BETWEEN:
                key = _order_key(field.kind)
                values = [sorted(pair, key=key) for pair in pairwise(samples)]
            elif op in (Op.IN, Op.NIN, Op.HAS_ANY_TAG) or (
                op is Op.CONTAINS and field.kind is Kind.CHOICES
            ):
                values = [samples[:1], samples[:2], samples[1:]]
            else:
                values = samples
            for value in values:
                condition = {"field": name, "op": op.value}
                if value is not None:
                    condition["value"] = value
                conditions.append(condition)
    return conditions


async def test_every_field_and_operator_agrees_with_the_reference(
    dataset: DataSet, agent: UUID, runtime: Runtime
):
    conditions = sweep(dataset)
    assert len(conditions) > 150
    disagreements = [
        c
        for c in conditions
        if await run_sql(runtime, agent, dataset.org, c) != expected(dataset, c)
    ]
    assert disagreements == []
