"""Which column of a CSV file fills which field: the suggestion and the caller's override.

A target is a standard field of the entity (`email`, `phone`, `name`, …) or a
custom field of the organization by its key (`custom_fields.<key>`, or the bare
key when no standard field has that name). The suggestion compares header names
with the fields' names, their usual synonyms and the custom fields' keys and
labels, ignoring case, spacing and punctuation ("E-mail", "Phone number",
"Company"). The caller's mapping replaces the suggestion column by column; a
column mapped to null is ignored; a target that does not exist is a 422 naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.errors import Unprocessable
from shared.imports.jobs import Entity

CUSTOM_PREFIX = "custom_fields."

# standard targets of each entity, with the header names (squashed) suggesting them
STANDARD: dict[str, dict[str, tuple[str, ...]]] = {
    "contacts": {
        "name": ("name", "fullname", "contactname", "contact", "person"),
        "first_name": ("firstname", "givenname", "first", "forename"),
        "last_name": ("lastname", "surname", "familyname", "last"),
        "email": ("email", "emailaddress", "mail", "emails", "workemail"),
        "phone": (
            "phone",
            "phonenumber",
            "phones",
            "mobile",
            "mobilephone",
            "mobilenumber",
            "cell",
            "cellphone",
            "telephone",
            "tel",
            "whatsapp",
        ),
        "company": ("company", "companyname", "organization", "organisation", "account"),
        "company_domain": ("companydomain", "domain", "website", "companywebsite", "web"),
    },
    "companies": {
        "name": ("name", "company", "companyname", "organization", "organisation", "account"),
        "domain": ("domain", "website", "web", "url", "site", "companydomain"),
        "phone": ("phone", "phonenumber", "telephone", "tel"),
    },
}

_CUSTOM_ENTITY = {"contacts": "contact", "companies": "company"}


def custom_entity(entity: Entity) -> str:
    return _CUSTOM_ENTITY[entity]


@dataclass(frozen=True)
class FieldDef:
    key: str
    label: str
    type: str
    options: list[str] | None


@dataclass(frozen=True)
class Mapping:
    """Column index → target, for the columns that are imported."""

    header: list[str]
    targets: dict[int, str]

    def as_json(self) -> dict[str, str | None]:
        return {h: self.targets.get(i) for i, h in enumerate(self.header)}


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def suggest(*, entity: Entity, header: list[str], fields: list[FieldDef]) -> dict[int, str]:
    names: dict[str, str] = {}
    for target, synonyms in STANDARD[entity].items():
        for synonym in synonyms:
            names.setdefault(synonym, target)
    for field in fields:
        target = _custom_target(entity, field.key)
        names.setdefault(_squash(field.key), target)
        names.setdefault(_squash(field.label), target)
    taken: set[str] = set()
    targets: dict[int, str] = {}
    for index, column in enumerate(header):
        found = names.get(_squash(column))
        if found is not None and found not in taken:  # the first such column wins
            targets[index] = found
            taken.add(found)
    return targets


def _custom_target(entity: Entity, key: str) -> str:
    return key if key not in STANDARD[entity] else f"{CUSTOM_PREFIX}{key}"


def resolve(
    *,
    entity: Entity,
    header: list[str],
    fields: list[FieldDef],
    override: dict[str, Any] | None,
) -> Mapping:
    """The suggestion, with the caller's choices (header name → target or null) over it."""
    targets = suggest(entity=entity, header=header, fields=fields)
    if override:
        known = {f.key for f in fields}
        positions = {name: i for i, name in enumerate(header)}
        problems = []
        for column, target in override.items():
            if column not in positions:
                problems.append(
                    {"field": f"mapping.{column}", "message": "is not a column of the file"}
                )
                continue
            if target is None or target == "":
                targets.pop(positions[column], None)
                continue
            canonical = canonical_target(entity, str(target), known)
            if canonical is None:
                problems.append(
                    {"field": f"mapping.{column}", "message": f"there is no field {target!r}"}
                )
                continue
            targets[positions[column]] = canonical
        if problems:
            names = ", ".join(p["field"] + ": " + p["message"] for p in problems)
            raise Unprocessable(f"The mapping is invalid: {names}", details=problems)
    repeated = sorted({t for t in targets.values() if list(targets.values()).count(t) > 1})
    if repeated:
        raise Unprocessable(
            f"The mapping fills {repeated} from more than one column",
            details=[{"field": "mapping", "message": f"{t} is mapped twice"} for t in repeated],
        )
    return Mapping(header=header, targets=targets)


def canonical_target(entity: Entity, target: str, custom_keys: set[str]) -> str | None:
    if target in STANDARD[entity]:
        return target
    key = target.removeprefix(CUSTOM_PREFIX)
    if key in custom_keys:
        return _custom_target(entity, key)
    return None


def custom_key(target: str) -> str:
    return target.removeprefix(CUSTOM_PREFIX)
