"""The `automation` consumer: an organization's rules, in order, for each event.

Fan-out makes a delivery only for events some enabled rule of the organization
starts on (and for members going offline or leaving, where the organization
reassigns). For each rule, in position order:

    skipped      the rule is already in the event's causation chain (its own change,
                 or a cycle of rules), or the chain is MAX_DEPTH long
    not_matched  its conditions do not hold for the event's records
    ran          its actions ran, each logged with its outcome; `stop` ends the event

A rule's actions, its run row and the causation of every event they cause
(`app.causation`, set local) commit together; the run row is unique per (event,
rule), so a delivery handled again after a crash skips the rules already run.
Messages are sent after that commit, once (an Idempotency-Key per run and action).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from shared.auth import UserPrincipal
from shared.automation.actions import SendMessage, parse_actions
from shared.automation.conditions import evaluate, parse_conditions
from shared.automation.perform import PENDING_SEND, Context, perform
from shared.automation.reassignment import reassign
from shared.automation.triggers import TRIGGERS, from_payload, resolve
from shared.db import Connection, Database
from shared.errors import AppError
from shared.events.base import Claimed, Consumer, Event, Result, retry
from shared.filters import Catalog
from shared.inbox.sending import SendRequest, send_message
from shared.runtime import Runtime

log = logging.getLogger("connectgain.automation")

MAX_DEPTH = 3
MEMBER_EVENTS = frozenset({"member.availability_changed", "member.removed"})


class AutomationConsumer(Consumer):
    name: ClassVar[str] = "automation"
    event_types: ClassVar[frozenset[str] | None] = frozenset(TRIGGERS) | MEMBER_EVENTS

    async def fan_out(
        self, *, conn: Connection, events: Sequence[Event]
    ) -> list[tuple[int, UUID | None]]:
        # Rows an import writes are the customer's existing data, not news: rules that
        # greet or assign must not fire for a whole CRM moved in (webhooks still get them).
        wanted = [e for e in events if self.wants(e.type) and not imported(e.causation)]
        if not wanted:
            return []
        rows = await conn.fetch(
            """
            select ev.id from unnest($1::bigint[], $2::uuid[], $3::text[]) ev(id, org, type)
             where exists (select 1 from public.automation_rules r
                            where r.organization_id = ev.org and r.trigger = ev.type
                              and r.enabled)
                or ev.type = any($4::text[])
             order by ev.id
            """,
            [e.id for e in wanted],
            [e.organization_id for e in wanted],
            [e.type for e in wanted],
            list(MEMBER_EVENTS),
        )
        return [(r["id"], None) for r in rows]

    async def handle(
        self, *, runtime: Runtime, deliveries: Sequence[Claimed], now: datetime, deadline: float
    ) -> list[Result]:
        results: list[Result] = []
        for delivery in deliveries:  # in order: rules of one record see each other's effects
            try:
                event = delivery.event
                if event.type in MEMBER_EVENTS:
                    await reassign(runtime, event)
                else:
                    await run_rules(runtime, event)
                results.append(Result("done"))
            except Exception as exc:  # one event's fault fails it alone, to be retried
                log.exception("automation failed for event %s", delivery.event.id)
                results.append(retry(f"{type(exc).__name__}: {exc}"))
        return results


def imported(causation: Any) -> bool:
    """Whether the event was written by an import (`app.causation` {"import": job id})."""
    return isinstance(causation, dict) and causation.get("import") is not None


def _chain(causation: Any) -> tuple[int, list[str]]:
    if not isinstance(causation, dict):
        return 0, []
    rules = causation.get("rules")
    return int(causation.get("depth") or 0), [str(r) for r in rules] if isinstance(
        rules, list
    ) else []


async def _log(conn: Connection, event: Event, rule: Any, **run: Any) -> int | None:
    run_id: int | None = await conn.fetchval(
        """
        insert into public.automation_runs (organization_id, rule_id, event_id, event_type,
               record_id, status, matched, actions, reason, depth)
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        on conflict (event_id, rule_id) do nothing
        returning id
        """,
        event.organization_id,
        rule["id"],
        event.id,
        event.type,
        event.aggregate_id,
        run["status"],
        run.get("matched", False),
        run.get("actions", []),
        run.get("reason"),
        run.get("depth", 0),
    )
    return run_id


async def run_rules(runtime: Runtime, event: Event) -> None:
    """The event's rules, skipping those already in its causation chain."""
    db = runtime.db
    org = event.organization_id
    async with db.service_conn() as conn:
        rules = await conn.fetch(
            "select id, name, trigger, conditions, actions, created_by"
            "  from public.automation_rules"
            " where organization_id = $1 and trigger = $2 and enabled"
            " order by position, created_at, id",
            org,
            event.type,
        )
        done = {
            r["rule_id"]: r
            for r in await conn.fetch(
                "select id, rule_id, actions from public.automation_runs where event_id = $1",
                event.id,
            )
        }
        records = (
            await resolve(
                conn=conn,
                organization_id=org,
                root=TRIGGERS[event.type].root,
                record_id=event.aggregate_id,
            )
            if event.aggregate_id is not None
            else {}
        )
    if records:
        records |= from_payload(event.type, event.payload)
    depth, chain = _chain(event.causation)
    catalogs: dict[str, Catalog] = {}
    for rule in rules:
        if rule["id"] in done:  # handled before a crash: finish its sends, honour its stop
            ctx = _resumed(event, rule, records, done[rule["id"]])
        else:
            ctx = await _run_rule(db, event, rule, records, depth, chain, catalogs)
        if ctx is None:
            continue
        if ctx.sends:
            await _send(runtime, rule, ctx)
        if ctx.stop:
            return


def _resumed(event: Event, rule: Any, records: dict[str, UUID], run: Any) -> Context | None:
    """The context of a run already logged, with the sends it had not finished."""
    outcomes: list[dict[str, Any]] = list(run["actions"] or [])
    if not outcomes:
        return None
    ctx = Context(
        organization_id=event.organization_id,
        rule_id=rule["id"],
        rule_name=rule["name"],
        trigger=event.type,
        event_id=event.id,
        records=records,
        run_id=run["id"],
        author=rule["created_by"],
        outcomes=outcomes,
        stop=any(o.get("type") == "stop" and o.get("ok") for o in outcomes),
    )
    raw = rule["actions"] if isinstance(rule["actions"], list) else []
    for index, outcome in enumerate(outcomes):
        if outcome.get("detail") == PENDING_SEND and index < len(raw):
            ctx.sends.append((index, SendMessage.model_validate(raw[index])))
    return ctx


async def _run_rule(
    db: Database,
    event: Event,
    rule: Any,
    records: dict[str, UUID],
    depth: int,
    chain: list[str],
    catalogs: dict[str, Catalog],
) -> Context | None:
    """One rule for one event, logged; the context of its actions if they ran."""
    org = event.organization_id
    reason = None
    if str(rule["id"]) in chain:
        reason = "the rule already ran in this chain of events"
    elif depth >= MAX_DEPTH:
        reason = f"the chain of events caused by rules reached {MAX_DEPTH}"
    elif not records:
        reason = "the record is gone"
    if reason is not None:
        async with db.service_conn() as conn:
            await _log(conn, event, rule, status="skipped", reason=reason, depth=depth)
        return None
    async with db.service_tx() as conn:
        try:
            actions = parse_actions(rule["actions"])
            parsed = await parse_conditions(
                conn=conn,
                organization_id=org,
                trigger=event.type,
                conditions=rule["conditions"],
                catalogs=catalogs,
            )
        except AppError as exc:  # a custom field deleted since, a row written past the function
            reason = f"invalid rule: {exc.message}"[:500]
            await _log(conn, event, rule, status="skipped", reason=reason, depth=depth)
            return None
        held = await evaluate(conn=conn, organization_id=org, parsed=parsed, records=records)
        if not all(held.values()):
            await _log(conn, event, rule, status="not_matched", depth=depth)
            return None
        # Every event the actions cause carries the chain, one longer.
        caused = {"depth": depth + 1, "rules": [*chain, str(rule["id"])], "event_id": event.id}
        await conn.execute(
            "select set_config('app.causation', $1, true)",
            json.dumps(caused, separators=(",", ":")),
        )
        run_id = await _log(conn, event, rule, status="ran", matched=True, depth=depth)
        if run_id is None:  # another handling of this delivery ran it
            return None
        ctx = Context(
            organization_id=org,
            rule_id=rule["id"],
            rule_name=rule["name"],
            trigger=event.type,
            event_id=event.id,
            records=records,
            run_id=run_id,
            author=rule["created_by"],
        )
        ctx.outcomes = await perform(conn, ctx, actions)
        await conn.execute(
            "update public.automation_runs set actions = $2 where id = $1", run_id, ctx.outcomes
        )
    return ctx


async def _send(runtime: Runtime, rule: Any, ctx: Context) -> None:
    """Through the agents' send path, as the rule's author, once per run and action (the
    Idempotency-Key), so a retried delivery never sends twice."""
    author = ctx.author
    for index, action in ctx.sends:
        outcome = ctx.outcomes[index]
        if author is None:
            outcome.update(ok=False, error="the rule's author is gone; nobody to send as")
            continue
        user = UserPrincipal(user_id=author, claims={"sub": str(author), "role": "authenticated"})
        request = SendRequest(
            conversation_id=ctx.records["conversation"], text=action.text, template=action.template
        )
        try:
            answer = await send_message(
                runtime, user=user, request=request, key=f"automation:{ctx.run_id}:{index}"
            )
            outcome.update(ok=answer.status < 300, detail={"status": answer.status})
        except AppError as exc:
            outcome.update(ok=False, detail=None, error=exc.message)
    async with runtime.db.service_conn() as conn:
        await conn.execute(
            "update public.automation_runs set actions = $2 where id = $1",
            ctx.run_id,
            ctx.outcomes,
        )
