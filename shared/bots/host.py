"""The live host: what a session's nodes do to the world, inside its transaction.

Messages are stored `queued` (sender_type bot) under the same rules as an agent's
reply — opted-out contacts, disabled accounts and WhatsApp's 24-hour window stop
the session with the reason — and are sent through the inbox's send path once the
session's transaction commits (`Outbound` jobs, in order). Every statement names
the session's organization.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx

from shared.automation import assignment
from shared.bots.conditions import holds
from shared.bots.engine import HttpAnswer, Outgoing, Stop
from shared.bots.graph import Graph
from shared.bots.nodes import Condition, Handoff, Http, Tag
from shared.channels.base import Account, OutboundMessage, Thread
from shared.channels.registry import channel_named
from shared.db import Connection
from shared.errors import AppError
from shared.events import egress, signing
from shared.inbox.accounts import load_account, webhook_url
from shared.inbox.outbound import MESSAGE_COLUMNS, Outbound
from shared.runtime import Runtime

MAX_ANSWER_BYTES = 64 * 1024

# The conversation as a session's nodes need it: channel, account, window, contact.
CONVERSATION = """
select c.id, c.organization_id, c.contact_id, c.channel_account_id, c.last_inbound_at,
       c.thread_key, c.subject, a.channel::text as channel, a.status as account_status,
       k.opted_out_channels::text[] as opted_out, k.name, k.phone, k.email,
       (select i.external_id from public.contact_identities i
         where i.organization_id = c.organization_id and i.contact_id = c.contact_id
           and i.channel = a.channel order by i.created_at desc limit 1) as recipient
  from public.conversations c
  join public.channel_accounts a on a.id = c.channel_account_id
  left join public.contacts k on k.id = c.contact_id
 where c.organization_id = $1 and c.id = $2
"""


def builtins(conversation: Any) -> dict[str, Any]:
    return {
        "contact_name": conversation["name"],
        "contact_phone": conversation["phone"],
        "contact_email": conversation["email"],
        "channel": conversation["channel"],
    }


def rendered(channel: str, message: Outgoing) -> tuple[str | None, dict[str, Any]]:
    """The text and send options for the channel: WhatsApp's interactive buttons and
    lists, Telegram's reply keyboard, else the options as a numbered text."""
    options = message.buttons or message.list_options
    if not options:
        return message.text, {}
    if channel == "whatsapp":
        if message.buttons:
            action: dict[str, Any] = {
                "buttons": [
                    {"type": "reply", "reply": {"id": o["id"], "title": o["title"][:20]}}
                    for o in options
                ]
            }
            kind = "button"
        else:
            rows = [{k: o[k] for k in ("id", "title", "description") if k in o} for o in options]
            action = {
                "button": message.list_button or "Choose",
                "sections": [{"title": "Options", "rows": rows}],
            }
            kind = "list"
        return message.text, {
            "interactive": {"type": kind, "body": {"text": message.text}, "action": action}
        }
    if channel == "telegram":
        keyboard = [[{"text": o["title"]}] for o in options]
        return message.text, {
            "reply_markup": {
                "keyboard": keyboard,
                "one_time_keyboard": True,
                "resize_keyboard": True,
            }
        }
    lines = "\n".join(f"{n}. {o['title']}" for n, o in enumerate(options, start=1))
    return f"{message.text}\n\n{lines}", {}


@dataclass
class LiveHost:
    runtime: Runtime
    conn: Connection
    graph: Graph
    session_id: UUID
    conversation: Any
    jobs: list[Outbound] = field(default_factory=list)
    account: Account | None = None

    @property
    def org(self) -> UUID:
        org: UUID = self.conversation["organization_id"]
        return org

    async def send(self, node_id: str, message: Outgoing) -> Any:
        conv = self.conversation
        channel = channel_named(conv["channel"])
        if conv["channel"] in (conv["opted_out"] or []):
            raise Stop(f"The contact opted out of {conv['channel']} messages")
        if conv["account_status"] != "active":
            raise Stop("The channel account is disabled")
        if conv["recipient"] is None:
            raise Stop(f"The contact has no {conv['channel']} address")
        try:
            options = channel.window_options(conv["last_inbound_at"], datetime.now(UTC))
            channel.check_outbound(text=message.text, media_type=message.media_type)
        except AppError as exc:
            raise Stop(exc.message) from exc
        text, extra = rendered(conv["channel"], message)
        attachments = (
            [{"type": message.media_type, "url": message.media_url}] if message.media_url else []
        )
        row = await self.conn.fetchrow(
            f"""
            insert into public.messages
              (organization_id, conversation_id, channel_account_id, direction, sender_type,
               content_type, body, attachments, metadata, status)
            values ($1, $2, $3, 'outbound', 'bot', $4, $5, $6, $7, 'queued')
            returning {MESSAGE_COLUMNS}
            """,
            self.org,
            conv["id"],
            conv["channel_account_id"],
            "interactive" if extra else (message.media_type or "text"),
            text,
            attachments,
            {"bot": {"session_id": str(self.session_id), "node": node_id}},
        )
        assert row is not None
        if self.account is None:  # one read of the secrets per conversation's pass
            self.account = await load_account(conn=self.conn, account_id=conv["channel_account_id"])
        account = self.account
        outbound = OutboundMessage(
            to=conv["recipient"],
            callback_url=webhook_url(
                self.runtime.settings, conv["channel"], conv["channel_account_id"]
            ),
            thread=Thread(key=conv["thread_key"], subject=conv["subject"]),
            text=text,
            media_url=message.media_url,
            media_type=message.media_type,
            metadata={**options, **extra},
        )
        self.jobs.append(Outbound(message=row, channel=channel, account=account, outbound=outbound))
        return {"message_id": str(row["id"]), "text": text}

    async def condition(self, node: Condition, variables: dict[str, Any]) -> bool:
        return await holds(
            conn=self.conn,
            organization_id=self.org,
            contact=node.contact,
            conversation=node.conversation,
            variables_filter=node.variables,
            types=self.graph.variable_types(),
            variables=variables,
            records={
                "conversation": self.conversation["id"],
                "contact": self.conversation["contact_id"],
            },
        )

    async def set_contact_field(self, key: str, value: Any) -> Any:
        changed = await self.conn.fetchval(
            "update public.contacts set custom_fields = custom_fields ||"
            " jsonb_build_object($3::text, $4::jsonb)"
            " where organization_id = $1 and id = $2 and exists (select 1 from"
            " public.custom_field_definitions d where d.organization_id = $1"
            " and d.entity = 'contact' and d.key = $3) returning true",
            self.org,
            self.conversation["contact_id"],
            key,
            value,
        )
        return {"contact_field": key, "changed": bool(changed)}

    async def tag(self, node: Tag) -> Any:
        record = self.conversation["contact_id" if node.target == "contact" else "id"]
        table, column = (
            ("public.contact_tags", "contact_id")
            if node.target == "contact"
            else ("public.conversation_tags", "conversation_id")
        )
        tag_id = await self.conn.fetchval(
            "select id from public.tags where organization_id = $1 and lower(name) = lower($2)",
            self.org,
            node.tag,
        )
        if tag_id is None:
            return {"changed": False, "error": f"no tag named {node.tag!r}"}
        if node.action == "add":
            sql = (
                f"insert into {table} (organization_id, {column}, tag_id) values ($1, $2, $3)"
                " on conflict do nothing returning true"
            )
        else:
            sql = (
                f"delete from {table} where organization_id = $1 and {column} = $2"
                " and tag_id = $3 returning true"
            )
        changed = await self.conn.fetchval(sql, self.org, record, tag_id)
        return {"changed": bool(changed), "tag_id": str(tag_id)}

    async def http(self, node: Http, url: str, body: Any, step: int) -> HttpAnswer:
        keys: list[str] = []
        if node.signing_endpoint_id:
            row = await self.conn.fetchrow(
                "select s.secret, case when s.previous_until > now() then s.previous_secret end"
                " as previous"
                "  from public.webhook_endpoints e join private.webhook_secrets s on"
                " s.endpoint_id = e.id"
                " where e.organization_id = $1 and e.id::text = $2",
                self.org,
                node.signing_endpoint_id,
            )
            if row is None:
                return HttpAnswer(None, error="the signing webhook endpoint is gone")
            keys = [k for k in (row["secret"], row["previous"]) if k]
        return await call(
            self.runtime, node, url, body, keys=keys, msg_id=f"msg_bot_{self.session_id}_{step}"
        )

    async def handoff(self, node: Handoff) -> Any:
        if node.method == "none":
            return {"assignee_id": None}
        user = UUID(node.user_id) if node.user_id else None
        if user is None:
            user = await assignment.choose(
                conn=self.conn,
                organization_id=self.org,
                method="balanced" if node.method == "balanced" else "round_robin",
            )
        if user is None:
            return {"assignee_id": None, "note": "no available agent under capacity"}
        await assignment.assign_conversation(
            conn=self.conn,
            organization_id=self.org,
            conversation_id=self.conversation["id"],
            user_id=user,
        )
        return {"assignee_id": str(user)}


async def call(
    runtime: Runtime, node: Http, url: str, body: Any, *, keys: list[str], msg_id: str
) -> HttpAnswer:
    """One request through the webhooks' guarded client (SSRF checks at every connection,
    no redirects), signed as a webhook when there are keys; never raises."""
    content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    headers = {"content-type": "application/json", "accept": "application/json"}
    if keys:
        headers = signing.headers(
            msg_id=msg_id, body=content.decode(), keys=keys, at=datetime.now(UTC)
        )
    started = time.monotonic()
    try:
        async with egress.client(runtime.settings) as http:
            response = await http.request(
                node.method,
                url,
                content=content if node.method != "GET" else None,
                headers=headers,
                timeout=httpx.Timeout(node.timeout_seconds, connect=min(3.0, node.timeout_seconds)),
            )
    except httpx.TimeoutException:
        return HttpAnswer(None, error=f"no answer within {node.timeout_seconds:g} s")
    except egress.Refused as exc:
        return HttpAnswer(None, error=f"refused: {exc}")
    except httpx.HTTPError as exc:
        return HttpAnswer(None, error=f"{type(exc).__name__}: {exc}"[:500])
    parsed: Any = None
    if response.content and len(response.content) <= MAX_ANSWER_BYTES:
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
    answer = HttpAnswer(response.status_code, parsed)
    if not answer.ok:
        answer.error = f"HTTP {response.status_code}" + (
            " (redirects are not followed)" if 300 <= response.status_code < 400 else ""
        )
    del started
    return answer
