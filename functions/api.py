"""/functions/v1/api — the public REST API for external systems, with cg_ API keys.

    /v1/contacts, /v1/companies, /v1/deals, /v1/tasks, /v1/notes, /v1/tags   read and write
    /v1/pipelines (with /board), /v1/conversations (with /messages), /v1/custom-fields   read
    /v1/messages/search, /v1/contacts/search                   substring search, newest first
    /v1/business-hours, /v1/sla-policies                       read; write keys write
    /v1/conversations/{id}/sla                                 read: its SLA clocks
    /v1/whatsapp-templates (with /sync), /v1/text-templates (with /{id}/render),
    /v1/quick-replies (?q= shortcut prefix or text)            read; write keys write
    /v1/campaigns (with /{id}/start, /pause, /resume, /cancel, /recipients)   read; write keys write
    /v1/automation-rules (with /order, /triggers, /{id}/dry-run, /{id}/runs)  read; write keys write
    /v1/billing/plans, /v1/billing/subscription, /v1/billing/usage            read
    /v1/bot-flows (with /{id}/publish, /versions, /simulate, /start),
    /v1/bot-sessions (with /{id}/steps)                         read; write keys write
    /v1/imports/kommo (connect, jobs, cancel, report)           signed-in admins (access token)
    /v1/dashboards (with /widgets, /widgets/{id}/data), /v1/metrics/{metric}
                                                               read; write keys write
    /v1/imports/csv (with /{id}, /{id}/cancel, /{id}/rejected.csv)   admins' access tokens only

A key acts for its own organization only (another organization's id is a
404); read-scoped keys cannot write. The API is a plan feature (`api`), as are
campaigns and SLAs: a plan without one answers 402 `feature_unavailable`.
Lists are cursor-paginated and take a
`filter` in the filter language, `sort` and `limit` (at most 200). POSTs honour
`Idempotency-Key`. The OpenAPI document is at /functions/v1/api/openapi.json.
"""

from __future__ import annotations

from fastapi import APIRouter

from functions._api import (
    automation,
    billing,
    bots,
    campaigns,
    companies,
    contacts,
    conversations,
    custom_fields,
    dashboards,
    deals,
    imports,
    kommo,
    notes,
    pipelines,
    quick_replies,
    search,
    sla,
    tags,
    tasks,
    templates,
)
from shared.web import function_app

OPENAPI = True
ERROR_STATUSES: tuple[int, ...] = ()  # each route documents its own (functions/_api/common.py)

router = APIRouter(prefix="/v1")
for resource in (
    search,  # before contacts: /contacts/search is not a contact id
    contacts,
    companies,
    deals,
    pipelines,
    tasks,
    notes,
    tags,
    conversations,
    custom_fields,
    sla,
    templates,
    quick_replies,
    campaigns,
    automation,
    billing,
    bots,
    kommo,
    dashboards,
    imports,
):
    router.include_router(resource.router)
STREAMED_BODIES = imports.STREAMED  # a CSV file up to 100 MB, read as it arrives

app = function_app(
    router,
    name="api",
    openapi=OPENAPI,
    error_statuses=ERROR_STATUSES,
    streamed_bodies=STREAMED_BODIES,
)
