"""A CSV upload: checked, mapped and staged with COPY, as a job or as a dry run.

The file (already on local disk, streamed there by the endpoint) is sniffed
(shared/imports/csvfile.py); its header is mapped (the suggestion, with the
caller's overrides); each record is normalized in Python and COPYed into
private.import_rows as it is read, so memory stays flat whatever the file's size.

- An import stages every record and creates its job in ONE transaction, which
  first checks the caller is an admin of the organization: a job exists only with
  all its rows, and a file that turns out unreadable halfway stores nothing.
- A dry run (shared/imports/preview.py) stages and merges the first records the
  same way, then rolls everything back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any, Literal
from uuid import UUID, uuid4

import asyncpg
import phonenumbers
from pydantic import Field, ValidationError, field_validator

from shared.auth import Principal
from shared.billing import require_feature
from shared.crm.inputs import Strict, TagRefs
from shared.crm.tags import resolve_tags
from shared.db import Connection, Database
from shared.errors import Forbidden, Unprocessable
from shared.imports import jobs
from shared.imports.csvfile import CsvFormat, NotCsv, records, sniff
from shared.imports.mapping import FieldDef, Mapping, custom_entity, resolve
from shared.imports.normalize import STAGED_COLUMNS, Normalizer
from shared.imports.spec import SPECS, Mode

MAX_FILE_BYTES = 100 * 1024 * 1024
KEYS = {"contacts": ["email", "phone"], "companies": ["domain", "name"]}


class CsvImportOptions(Strict):
    entity: jobs.Entity = "contacts"
    mapping: dict[str, str | None] | None = Field(
        default=None,
        description="Header name → target (a field, or a custom field's key); null ignores"
        " the column. Columns left out keep the suggestion.",
    )
    dedupe: Mode = Field(
        default="skip",
        description="A row matching a record (or an earlier row): skip it, fill only the"
        " record's empty fields (update_empty), or overwrite them",
    )
    match: list[Literal["email", "phone", "domain", "name"]] | None = Field(
        default=None,
        description="The keys rows match records on: contacts e-mail and/or phone (default"
        " both), companies domain and/or name (default both)",
    )
    default_region: str | None = Field(
        default=None, description="ISO country code for phones written without +country"
    )
    tags: TagRefs = Field(default_factory=list, description="Tags for every imported contact")
    dry_run: bool = False
    preview: int = Field(default=20, ge=1, le=200, description="Rows a dry run answers")

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("must be an ISO 3166 country code phonenumbers knows, e.g. US")
        return value.upper() if value else None

    def keys(self) -> list[str]:
        keys = self.match if self.match is not None else KEYS[self.entity]
        wrong = [k for k in keys if k not in SPECS[self.entity].keys]
        if wrong or not keys:
            raise Unprocessable(
                f"match: {self.entity} match on {KEYS[self.entity]}",
                details=[{"field": "match", "message": f"{wrong or keys} cannot be used"}],
            )
        return list(dict.fromkeys(keys))


def parse_options(text: str | None) -> CsvImportOptions:
    if not text:
        return CsvImportOptions()
    try:
        return CsvImportOptions.model_validate_json(text)
    except ValidationError as exc:
        details = [
            {"field": ".".join(["options", *map(str, e["loc"])]), "message": e["msg"]}
            for e in exc.errors()
        ]
        raise Unprocessable(
            "The options are invalid: "
            + "; ".join(f"{d['field']}: {d['message']}" for d in details),
            details=details,
        ) from None


async def field_defs(
    *, conn: Connection, organization_id: UUID, entity: jobs.Entity
) -> list[FieldDef]:
    rows = await conn.fetch(
        "select key, label, type::text, options from public.custom_field_definitions"
        " where organization_id = $1 and entity = $2::public.custom_field_entity"
        " order by position, key",
        organization_id,
        custom_entity(entity),
    )
    return [FieldDef(r["key"], r["label"], r["type"], r["options"]) for r in rows]


async def require_admin(*, db: Database, principal: Principal, organization_id: UUID) -> None:
    """Before reading any file: the caller is an admin of the organization (403 otherwise)."""
    async with db.user_tx(principal) as conn:
        if not await conn.fetchval(
            "select $1 in (select app.org_ids_with_role('admin'))", organization_id
        ):
            raise Forbidden("Only the organization's admins import data", code="admin_only")
        await require_feature(conn=conn, organization_id=organization_id, feature="imports")


async def _require_admin(conn: Connection, organization_id: UUID, user_id: UUID) -> None:
    """In the service transaction that stages: the caller is (still) an admin."""
    if not await conn.fetchval(
        "select exists (select 1 from public.organization_members where organization_id = $1"
        " and user_id = $2 and role >= 'admin')",
        organization_id,
        user_id,
    ):
        raise Forbidden("Only the organization's admins import data", code="admin_only")


def staged_rows(
    file: IO[bytes], fmt: CsvFormat, normalizer: Normalizer, job_id: UUID, org: UUID
) -> Iterator[tuple[Any, ...]]:
    for line, fields in records(file, fmt):
        values, custom, error = normalizer.row(fields)
        if error is None:
            error = normalizer.missing(values)
        yield (job_id, line, org, *values, json.dumps(custom) if custom else None, fields, error)


async def stage(conn: Connection, rows: Iterator[tuple[Any, ...]]) -> int:
    try:
        result = await conn.copy_records_to_table(
            "import_rows", schema_name="private", columns=STAGED_COLUMNS, records=rows
        )
    except (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError) as exc:
        raise NotCsv(f"The file is not a CSV file: it holds binary data ({exc})") from exc
    return int(result.split()[-1])


async def start_import(
    *,
    db: Database,
    user_id: UUID,
    organization_id: UUID,
    file: IO[bytes],
    options: CsvImportOptions,
) -> dict[str, Any]:
    """Stage the whole file and create its job (pending); the runner merges it."""
    job_id = uuid4()
    async with prepared(db, user_id, organization_id, file, options) as (conn, fmt, mapping):
        normalizer, keys = mapping.normalizer, options.keys()
        tag_ids = await resolve_tags(conn=conn, organization_id=organization_id, refs=options.tags)
        staged = await stage(conn, staged_rows(file, fmt, normalizer, job_id, organization_id))
        return await jobs.create_job(
            conn=conn,
            organization_id=organization_id,
            source="csv",
            entity=options.entity,
            options={
                "columns": fmt.header,
                "encoding": fmt.encoding,
                "delimiter": fmt.delimiter,
                "mapping": mapping.as_json(),
                "dedupe": options.dedupe,
                "match": keys,
                "default_region": options.default_region,
                "tags": options.tags,
                "tag_ids": [str(t) for t in tag_ids],
                "companies": names_companies(mapping.mapping),
                "rows": staged,
            },
            created_by=user_id,
            job_id=job_id,
        )


@dataclass(frozen=True)
class _Mapped:
    mapping: Mapping
    normalizer: Normalizer

    def as_json(self) -> dict[str, str | None]:
        return self.mapping.as_json()


@asynccontextmanager
async def prepared(
    db: Database, user_id: UUID, org: UUID, file: IO[bytes], options: CsvImportOptions
) -> AsyncIterator[tuple[Connection, CsvFormat, _Mapped]]:
    """The checks both an import and a dry run make, in the service transaction that
    stages: options, the file's format, the caller an admin, the mapping."""
    options.keys()
    _refuse_tags_for_companies(options)
    fmt = sniff(file)
    async with db.service_tx() as conn:
        await _require_admin(conn, org, user_id)
        fields = await field_defs(conn=conn, organization_id=org, entity=options.entity)
        mapping = resolve(
            entity=options.entity, header=fmt.header, fields=fields, override=options.mapping
        )
        normalizer = Normalizer(
            entity=options.entity, mapping=mapping, fields=fields, region=options.default_region
        )
        yield conn, fmt, _Mapped(mapping, normalizer)


def names_companies(mapping: Mapping) -> bool:
    return bool({"company", "company_domain"} & set(mapping.targets.values()))


def _refuse_tags_for_companies(options: CsvImportOptions) -> None:
    if options.tags and options.entity != "contacts":
        raise Unprocessable(
            "tags: only contacts are tagged",
            details=[{"field": "tags", "message": "only contacts are tagged"}],
        )
