"""What starts a flow on its own: a keyword or a regular expression in an inbound message,
or a new conversation on given channel accounts. (The automation action and the API
start a named flow: shared.bots.sessions.start.)

The organization's enabled, published flows are tried in creation order; the first
whose trigger matches starts. Regular expressions run in PostgreSQL (`~*`, whose
engine does not backtrack exponentially), checked when the flow is saved.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.db import Connection
from shared.errors import Unprocessable


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Keyword(_Trigger):
    type: Literal["keyword"]
    keywords: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=50
    )
    match: Literal["exact", "contains", "starts_with"] = "exact"


class Regex(_Trigger):
    type: Literal["regex"]
    pattern: str = Field(min_length=1, max_length=200)


class NewConversation(_Trigger):
    type: Literal["new_conversation"]
    channel_account_ids: list[UUID] = Field(min_length=1, max_length=100)


Trigger = Annotated[Keyword | Regex | NewConversation, Field(discriminator="type")]
TRIGGERS: TypeAdapter[list[Trigger]] = TypeAdapter(Annotated[list[Trigger], Field(max_length=20)])


async def check_triggers(conn: Connection, organization_id: UUID, triggers: list[Trigger]) -> None:
    """Patterns PostgreSQL can compile, accounts of the organization; else a 422 naming it."""
    for index, trigger in enumerate(triggers):
        place = f"triggers[{index}]"
        if isinstance(trigger, Regex):
            try:
                await conn.fetchval("select '' ~* $1", trigger.pattern)
            except asyncpg.PostgresError as exc:
                raise Unprocessable(
                    f"{place}.pattern: not a valid regular expression ({exc})",
                    details=[{"field": f"{place}.pattern", "message": str(exc)}],
                ) from exc
        if isinstance(trigger, NewConversation):
            known = await conn.fetchval(
                "select count(*) from public.channel_accounts where organization_id = $1"
                " and id = any($2::uuid[])",
                organization_id,
                list(set(trigger.channel_account_ids)),
            )
            if known != len(set(trigger.channel_account_ids)):
                raise Unprocessable(
                    f"{place}.channel_account_ids: not all are accounts of this organization",
                    details=[
                        {"field": f"{place}.channel_account_ids", "message": "unknown account"}
                    ],
                )


def _keyword(trigger: Keyword, text: str) -> bool:
    said = " ".join(text.casefold().split())
    for word in trigger.keywords:
        wanted = " ".join(word.casefold().split())
        if (
            (trigger.match == "exact" and said == wanted)
            or (trigger.match == "contains" and wanted in said)
            or (trigger.match == "starts_with" and said.startswith(wanted))
        ):
            return True
    return False


async def matching(
    conn: Connection,
    *,
    organization_id: UUID,
    text: str | None,
    account_id: UUID,
    new_conversation: bool,
) -> tuple[Any, dict[str, Any]] | None:
    """The first flow a message (or a new conversation) starts, and how it matched."""
    flows = await conn.fetch(
        "select id, published_version_id, timeout_seconds, triggers from public.bot_flows"
        " where organization_id = $1 and enabled and published_version_id is not null"
        "   and triggers <> '[]'::jsonb order by created_at, id",
        organization_id,
    )
    for flow in flows:
        try:
            parsed = TRIGGERS.validate_python(flow["triggers"])
        except ValueError:
            continue  # written past the function; never started
        patterns = []
        for trigger in parsed:
            if isinstance(trigger, NewConversation):
                if new_conversation and account_id in trigger.channel_account_ids:
                    return flow, {"type": "new_conversation"}
            elif text is None:
                continue
            elif isinstance(trigger, Keyword):
                if _keyword(trigger, text):
                    return flow, {"type": "keyword", "keywords": trigger.keywords}
            else:
                patterns.append(trigger.pattern)
        if patterns and text is not None:
            try:
                async with conn.transaction():  # a pattern written past the function
                    hit = await conn.fetchval(
                        "select p from unnest($2::text[]) p where $1 ~* p limit 1",
                        text[:4096],
                        patterns,
                    )
            except asyncpg.PostgresError:
                continue
            if hit is not None:
                return flow, {"type": "regex", "pattern": hit}
    return None
