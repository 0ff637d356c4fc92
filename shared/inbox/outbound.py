"""An outbound message's way out: queued → sending → sent | failed | unknown.

    queued ──claim──▶ sending ──provider took it────────────▶ sent
       │                 ├──provider refused (4xx)──────────▶ failed  (kept as the answer)
       │                 ├──provider surely did not act─────▶ failed  (key released: retry sends)
       │                 └──timeout/5xx after sending, ─────▶ unknown (a person decides)
       │                    unreadable success, claim expired
       └──claim never made (server died before)────────────▶ failed  (by the sweeper)

The provider call runs outside any transaction. Its outcome and the Idempotency-Key's
answer are written in one transaction, so a key never answers for a state the
message does not have. A row left `sending` past its deadline (the server died
mid-call) is marked unknown, never sent again by itself: by a retry with the same key,
or by the outbound-sweep job. The real outcome, arriving later, still replaces unknown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from uuid import UUID

from asyncpg import Record

from shared.channels.answers import ProviderError
from shared.channels.base import Account, Channel, OutboundMessage
from shared.channels.http import Pacer, ProviderClient
from shared.db import Connection
from shared.errors import AppError, Conflict, NotFound, ServiceUnavailable, UpstreamError
from shared.idempotency import Answer, Claim, Held, replay
from shared.inbox.seam import ATTEMPTS, Attempt, SendFailure, attempts_sql
from shared.inbox.statuses import MessageStatus
from shared.runtime import Runtime

log = logging.getLogger("connectgain.sending")

MESSAGE_COLUMNS = (
    "id, organization_id, conversation_id, channel_account_id, direction::text as direction,"
    " sender_type::text as sender_type, sender_id, content_type::text as content_type, body,"
    " attachments, metadata, provider_message_id, status::text as status, error, created_at,"
    " sent_at, delivered_at, read_at"
)
DONE = frozenset({MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ})
# Not finished: a send is still waiting or under way.
PENDING = frozenset({MessageStatus.QUEUED, MessageStatus.SENDING})
# A failure after which nothing reached the provider: a retry may send.
NOT_SENT = frozenset({"unavailable", "not_sent"})

INTERRUPTED = SendFailure(
    message="The send was interrupted after it started: the provider may or may not"
    " have the message",
    status=None,
    code="interrupted",
    outcome="unknown",
    retryable=False,
    provider=None,
)
NEVER_STARTED = SendFailure(
    message="The send never started: the server stopped before calling the provider",
    status=None,
    code="not_started",
    outcome="not_sent",
    retryable=False,
    provider=None,
)


@dataclass(frozen=True)
class Outbound:
    """A queued message and what its channel needs to send it."""

    message: Record
    channel: Channel
    account: Account
    outbound: OutboundMessage


def verdict(row: Record) -> AppError | None:
    """What a finished message answers: None when sent, else the error for the client."""
    status = row["status"]
    if status in DONE:
        return None
    error = row["error"] if isinstance(row["error"], dict) else {}
    details = {"message_id": str(row["id"]), "status": status, "provider": error}
    if status == MessageStatus.UNKNOWN:
        return UpstreamError(
            "The provider may or may not have sent the message: it is marked unknown for"
            " a person to check, and will not be sent again by itself",
            code="provider_outcome_unknown",
            details=details,
        )
    if error.get("outcome") in NOT_SENT:
        if error.get("retry_after") is not None:
            details["retry_after"] = error["retry_after"]
        return ServiceUnavailable(
            "The provider did not take the message and nothing was sent; try again later",
            code="provider_unavailable",
            details=details,
        )
    return UpstreamError(
        f"The provider refused the message: {error.get('message') or 'no reason given'}",
        code="provider_rejected",
        details=details,
    )


async def conclude(conn: Connection, claim: Claim | None, row: Record) -> AppError | None:
    """Keep a finished message's answer on the key (in `conn`'s transaction), or release
    the key when nothing was sent. Returns the error to answer with; None when sent."""
    error = verdict(row)
    if claim is not None:
        if error is None:
            await claim.store(conn, 201, dict(row))
        elif isinstance(error, ServiceUnavailable):
            await claim.release(conn)
        else:
            await claim.store(conn, 502, error.body())
    return error


async def record(
    conn: Connection,
    message: Record,
    status: str,
    provider_message_id: str | None,
    error: SendFailure | None,
    attempts: list[Attempt],
) -> Record:
    row = await conn.fetchrow(
        f"select {MESSAGE_COLUMNS} from app.record_send($1, $2, $3, $4, $5, $6)",
        message["id"],
        message["organization_id"],
        status,
        provider_message_id,
        None if error is None else error.sql(),
        attempts_sql(attempts),
    )
    assert row is not None
    return row


async def deliver(runtime: Runtime, job: Outbound, claim: Claim | None) -> Answer:
    """Claim the queued message, call the provider once (retrying only what it surely did
    not act on), and record the outcome with the key's answer."""
    settings, message = runtime.settings, job.message
    async with runtime.db.service_tx() as conn:
        started = await conn.fetchval(
            "update public.messages set status = 'sending',"
            " send_deadline = now() + make_interval(secs => $3)"
            " where id = $1 and organization_id = $2 and status = 'queued' returning true",
            message["id"],
            message["organization_id"],
            settings.claim_seconds,
        )
        if claim is not None:
            if started:
                await claim.link(conn, message["id"], settings.claim_seconds)
            else:
                await claim.release(conn)
    if not started:  # given up by the sweeper while we were slow: nothing was sent
        raise ServiceUnavailable("The message waited too long and was not sent; send again")
    call = await call_provider(runtime, job)
    async with runtime.db.service_tx() as conn:
        row = await record(conn, message, call.outcome, call.provider_id, call.error, call.attempts)
        failure = await conclude(conn, claim, row)
    if failure is not None:
        raise call.own or failure
    return Answer.of(201, dict(row))


@dataclass(frozen=True)
class Call:
    """One claimed message's provider call: its id, or why not, with every attempt."""

    provider_id: str | None
    error: SendFailure | None
    own: AppError | None  # our own refusal before any provider call
    attempts: list[Attempt]

    @property
    def outcome(self) -> str:
        if self.error is None:
            return "sent"
        return "unknown" if self.error.outcome == "unknown" else "failed"


async def call_provider(runtime: Runtime, job: Outbound, *, pace: Pacer | None = None) -> Call:
    """Call the provider once for a claimed message (retrying only what it surely did not
    act on), each attempt admitted by `pace` if given; never raises for the provider's
    answer, so batches of calls can share it."""
    settings = runtime.settings
    client = ProviderClient(
        runtime.http, settings, deadline=time.monotonic() + settings.claim_seconds, pace=pace
    )
    provider_id: str | None = None
    error: SendFailure | None = None
    own: AppError | None = None
    try:
        result = await job.channel.send(client, job.account, job.outbound)
        provider_id = result.provider_message_id
    except ProviderError as exc:
        error = SendFailure.model_validate(exc.as_record())
        if error.status is None and client.attempts:  # e.g. a success without an id
            error = error.model_copy(update={"status": client.attempts[-1]["status"]})
    except AppError as exc:  # our own refusal (a missing secret) before any provider call
        error = NEVER_STARTED.model_copy(update={"message": exc.message, "code": exc.code})
        own = exc
    except Exception as exc:  # a fault of ours while the call may have gone out
        log.exception("sending message %s failed unexpectedly", job.message["id"])
        error = INTERRUPTED.model_copy(update={"message": f"{type(exc).__name__} while sending"})
    return Call(provider_id, error, own, ATTEMPTS.validate_python(client.attempts))


async def held(runtime: Runtime, waiting: Held) -> Answer:
    """A retry while the key is held: the linked message's answer, never a second send."""
    if waiting.resource_id is None:
        raise Conflict("A request with this Idempotency-Key is still in progress")
    failure: AppError | None = None
    async with runtime.db.service_tx() as conn:
        state = await conn.fetchrow(
            "select id, organization_id, status::text as status,"
            " send_deadline < now() as overdue, coalesce(metadata -> 'attempts', '[]') as attempts"
            " from public.messages where id = $1 for update",
            waiting.resource_id,
        )
        row: Record | None = None
        if state is None:  # deleted with its conversation
            await waiting.claim.release(conn)
        elif state["status"] == MessageStatus.SENDING and state["overdue"]:  # sender died mid-call
            attempts = ATTEMPTS.validate_python(state["attempts"])
            row = await record(conn, state, MessageStatus.UNKNOWN, None, INTERRUPTED, attempts)
        else:
            row = await conn.fetchrow(
                f"select {MESSAGE_COLUMNS} from public.messages where id = $1", state["id"]
            )
        if row is not None and row["status"] not in PENDING:
            failure = await conclude(conn, waiting.claim, row)
    if row is None:
        raise NotFound("The message of this Idempotency-Key no longer exists")
    if row["status"] in PENDING:
        raise Conflict(
            "The message of this Idempotency-Key is still being sent",
            code="send_in_progress",
            details={"message_id": str(row["id"]), "status": row["status"]},
        )
    if failure is None:
        return replay(201, dict(row))
    if isinstance(failure, ServiceUnavailable):
        raise failure  # nothing was sent and the key is free again
    return replay(502, failure.body())


async def sweep(runtime: Runtime, *, limit: int) -> dict[str, int]:
    """Finish outbound messages nobody is finishing: `sending` past its deadline →
    unknown (never re-sent), `queued` longer than a claim lasts → failed (never sent)."""
    counts = {"unknown": 0, "failed": 0}
    async with runtime.db.service_tx() as conn:
        rows = await conn.fetch(
            "select id, organization_id, status::text as status,"
            " coalesce(metadata -> 'attempts', '[]') as attempts"
            " from public.messages"
            " where direction = 'outbound'"
            "   and ((status = 'sending' and send_deadline < now())"
            "     or (status = 'queued' and created_at < now() - make_interval(secs => $1)))"
            " order by created_at limit $2 for update skip locked",
            runtime.settings.claim_seconds,
            limit,
        )
        keys: dict[UUID, list[Claim]] = {}
        for key in await conn.fetch(
            "select resource_id, owner, scope, key from private.idempotency_keys"
            " where resource_id = any($1::uuid[]) and status_code is null",
            [stuck["id"] for stuck in rows],
        ):
            keys.setdefault(key["resource_id"], []).append(
                Claim(key["owner"], key["scope"], key["key"])
            )
        for stuck in rows:
            interrupted = stuck["status"] == MessageStatus.SENDING
            outcome, error = ("unknown", INTERRUPTED) if interrupted else ("failed", NEVER_STARTED)
            attempts = ATTEMPTS.validate_python(stuck["attempts"])
            row = await record(conn, stuck, outcome, None, error, attempts)
            counts[outcome] += 1
            for claim in keys.get(stuck["id"], []):
                await conclude(conn, claim, row)
    if any(counts.values()):
        log.warning("outbound sweep finished stuck messages: %s", counts)
    return counts
