"""What an import writes per entity, and how a record is found by a row's keys.

Shared by the plan (shared/imports/plan.py: every row matched once, for the whole
file) and the merge (shared/imports/merge.py: a batch written, a row whose insert
found its key taken meanwhile matched again)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from shared.imports.jobs import Entity

Mode = Literal["skip", "update_empty", "overwrite"]
OUTCOMES = ("created", "updated", "unchanged", "merged", "skipped", "rejected")
SOURCE = "import"


@dataclass(frozen=True)
class Spec:
    table: str
    values: tuple[str, ...]  # the record's columns an import writes
    keys: dict[str, str]  # match key → the expression on the table (and the staged row)
    unique: frozenset[str]  # keys the table holds unique (a plain join finds at most one)
    extra: str  # extra columns and values of an insert
    # the custom field entity whose values the import cleans once per distinct value
    # (its row trigger skipped: migration imports_clean_once); None: the trigger checks
    cleans: str | None


SPECS: dict[Entity, Spec] = {
    "contacts": Spec(
        table="contacts",
        values=("name", "email", "phone", "company_id", "custom_fields"),
        keys={"email": "{}.email", "phone": "{}.phone"},
        unique=frozenset({"email", "phone"}),
        extra="source",
        cleans="contact",
    ),
    "companies": Spec(
        table="companies",
        values=("name", "domain", "phone", "custom_fields"),
        keys={"domain": "{}.domain", "name": "lower({}.name)"},
        unique=frozenset({"domain"}),
        extra="",
        cleans=None,
    ),
}

CONFLICT_REASON = {
    "contacts": "the e-mail belongs to one contact and the phone to another",
    "companies": "the domain belongs to one company and the name to another",
}
TAKEN_REASON = "another row or record already has this {keys}"


def probes(spec: Spec, keys: list[str], *, row: str, org: str) -> list[str]:
    """Per key, the id of the record with the row's value (alias `row`), in `org`.

    Each is a scalar subquery: a probe of the (organization, key) index per row
    whatever the statistics say. A join let stale statistics (the staging table just
    COPYed, an organization's contacts just merged) pick a plan scanning all the
    organization's records per row."""
    ids = []
    for key in keys:
        expr = spec.keys[key]
        # a unique key: ordered by itself, which only its index gives unsorted: the
        # planner takes that index even when it believes the organization has no rows
        order = expr.format("t") if key in spec.unique else "t.created_at, t.id"
        ids.append(
            f"(select t.id from public.{spec.table} t where t.organization_id = {org}"
            f" and {expr.format('t')} = {expr.format(row)} and {expr.format('t')} is not null"
            f" order by {order} limit 1)"
        )
    return ids


def disagree(ids: list[str]) -> str:
    """True when two keys found two different records."""
    pairs = [
        f"({a} is not null and {b} is not null and {a} <> {b})"
        for i, a in enumerate(ids)
        for b in ids[i + 1 :]
    ]
    return " or ".join(pairs) or "false"


def as_counts(counts: Counter[str], rejected: int) -> dict[str, Any]:
    return {name: counts.get(name, 0) for name in OUTCOMES[:-1]} | {"rejected": rejected}
