"""What the public API answers: one model per resource, as documented in its OpenAPI."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from shared.crm.inputs import Channel
from shared.inbox.statuses import MessageStatus

Money = Annotated[Decimal, Field(description='A decimal amount, as a string: "1500.00"')]


class TagSummary(BaseModel):
    id: UUID
    name: str
    color: str


class Tag(TagSummary):
    organization_id: UUID
    created_at: datetime
    updated_at: datetime


class Contact(BaseModel):
    id: UUID
    organization_id: UUID
    name: str | None
    email: str | None
    phone: str | None
    avatar_url: str | None
    company_id: UUID | None
    source: str | None
    assignee_id: UUID | None
    opted_out_channels: list[Channel]
    custom_fields: dict[str, Any]
    tags: list[TagSummary]
    last_activity_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Company(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    domain: str | None
    phone: str | None
    address: dict[str, str]
    custom_fields: dict[str, Any]
    assignee_id: UUID | None
    created_at: datetime
    updated_at: datetime


class Deal(BaseModel):
    id: UUID
    organization_id: UUID
    title: str
    value: Money | None
    currency: str
    probability: int
    expected_close_date: date | None
    pipeline_id: UUID
    stage_id: UUID
    position: int = Field(description="Order within the stage's column (ascending)")
    contact_id: UUID | None
    contact_name: str | None = Field(description="The contact's name, kept up to date")
    company_id: UUID | None
    company_name: str | None = Field(description="The company's name, kept up to date")
    assignee_id: UUID | None
    status: Literal["open", "won", "lost"]
    won_at: datetime | None
    lost_at: datetime | None
    lost_reason: str | None
    custom_fields: dict[str, Any]
    created_by: UUID | None
    tags: list[TagSummary]
    created_at: datetime
    updated_at: datetime


class StageChange(BaseModel):
    from_stage_id: UUID | None
    to_stage_id: UUID | None
    changed_by: UUID | None = Field(description="The member who moved it; null for API keys")
    api_key_id: UUID | None
    changed_at: datetime


class Stage(BaseModel):
    id: UUID
    name: str
    position: int
    probability: int
    kind: Literal["open", "won", "lost"]


class Pipeline(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    position: int
    is_default: bool
    stages: list[Stage]
    created_at: datetime
    updated_at: datetime


class BoardCard(BaseModel):
    id: UUID
    title: str
    value: Money | None
    currency: str
    probability: int
    position: int
    expected_close_date: date | None
    assignee_id: UUID | None
    contact_id: UUID | None
    contact_name: str | None
    company_id: UUID | None
    company_name: str | None


class BoardColumn(Stage):
    deals: list[BoardCard]
    total_deals: int = Field(description="All open deals in the stage")
    total_value: dict[str, Money] = Field(description="Their value, per currency")
    has_more: bool = Field(description="More deals than per_stage; page them with /v1/deals")


class PipelineSummary(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    position: int
    is_default: bool
    created_at: datetime
    updated_at: datetime


class Board(BaseModel):
    pipeline: PipelineSummary
    stages: list[BoardColumn]


class Task(BaseModel):
    id: UUID
    organization_id: UUID
    title: str
    description: str | None
    due_at: datetime | None
    priority: Literal["low", "medium", "high", "urgent"]
    status: Literal["open", "done", "cancelled"]
    assignee_id: UUID | None
    contact_id: UUID | None
    deal_id: UUID | None
    completed_at: datetime | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class Note(BaseModel):
    id: UUID
    organization_id: UUID
    body: str
    author_id: UUID | None = Field(description="The member who wrote it; null for API keys")
    contact_id: UUID | None
    company_id: UUID | None
    deal_id: UUID | None
    conversation_id: UUID | None
    created_at: datetime
    updated_at: datetime


class Conversation(BaseModel):
    id: UUID
    organization_id: UUID
    contact_id: UUID
    channel_account_id: UUID
    channel: Channel
    subject: str | None
    status: Literal["open", "pending", "snoozed", "resolved"]
    assignee_id: UUID | None
    snoozed_until: datetime | None
    last_message_at: datetime | None
    last_inbound_at: datetime | None
    unread_count: int
    tags: list[TagSummary]
    created_at: datetime
    updated_at: datetime


class Message(BaseModel):
    id: UUID
    organization_id: UUID
    conversation_id: UUID
    channel_account_id: UUID
    direction: Literal["inbound", "outbound"]
    sender_type: Literal["contact", "user", "bot", "system"]
    sender_id: UUID | None
    content_type: str
    body: str | None
    attachments: list[Any]
    status: MessageStatus
    error: Any
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None


class CustomFieldDefinition(BaseModel):
    id: UUID
    entity: Literal["contact", "company", "deal"]
    key: str = Field(description="Values live in custom_fields.<key>; filter on it the same way")
    label: str
    type: Literal[
        "text",
        "number",
        "date",
        "datetime",
        "boolean",
        "select",
        "multiselect",
        "url",
        "email",
        "phone",
    ]
    options: list[str] | None
    required: bool
    position: int
