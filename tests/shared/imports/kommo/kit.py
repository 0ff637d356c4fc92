"""Helpers of the Kommo import tests: this server registered as the fake's OAuth
integration, an account connected by a long-lived token (as the connect endpoint
stores it), a job waiting, and one run of it paced without waiting."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from shared.db import Connection
from shared.imports import jobs
from shared.imports.kommo import run_kommo_import
from shared.imports.kommo.client import TokenBucket
from shared.runtime import Runtime
from tests.shared.imports.kommo.fake import FakeClock, FakeKommo


async def connect(db: Connection, org: UUID, kommo: FakeKommo) -> None:
    await db.execute(
        "insert into kommo_connections (organization_id, subdomain, account_id, account_name)"
        " values ($1, $2, 30123456, 'Acme Trading')",
        org,
        kommo.subdomain,
    )
    await db.execute(
        "insert into private.kommo_tokens (organization_id, token) values ($1, $2)",
        org,
        kommo.token,
    )


async def new_job(db: Connection, org: UUID, owner: UUID, **options: Any) -> UUID:
    job = await jobs.create_job(
        conn=db,
        organization_id=org,
        source="kommo",
        entity=None,
        options=options,
        created_by=owner,
    )
    job_id: UUID = job["id"]
    return job_id


async def run_job(runtime: Runtime, job: UUID) -> str:
    """One run of the job (Kommo's routes installed by the caller); its status after."""
    clock = FakeClock()
    return await run_kommo_import(
        runtime=runtime, job_id=job, bucket=TokenBucket(clock=clock, sleep=clock.sleep)
    )


def register_integration(monkeypatch: pytest.MonkeyPatch, kommo: FakeKommo) -> None:
    """This server as the public integration of `kommo` (OAuth 2.0 configured)."""
    monkeypatch.setenv("CONNECTGAIN_KOMMO_CLIENT_ID", kommo.client_id)
    monkeypatch.setenv("CONNECTGAIN_KOMMO_CLIENT_SECRET", kommo.client_secret)
    monkeypatch.setenv("CONNECTGAIN_KOMMO_REDIRECT_URI", kommo.redirect_uri)
