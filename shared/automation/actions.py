"""What a rule does: the actions, checked when a rule is saved and run by the consumer.

Every reference (a user, tag, stage, webhook endpoint, custom field) is checked
against the rule's organization when the rule is saved; when it runs, every
statement is scoped to the event's organization again, so a row of another
organization can never be touched whatever a rule holds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from shared.automation.triggers import TAGGABLE, records_of, subject
from shared.channels.whatsapp.templates import TemplateSend
from shared.crm.inputs import Strict
from shared.db import Connection
from shared.errors import Unprocessable

Target = Literal["contact", "conversation", "deal"]


class Assign(Strict):
    type: Literal["assign"]
    method: Literal["user", "round_robin", "balanced"]
    user_id: UUID | None = Field(default=None, description="For method user: the assignee")


class AddTag(Strict):
    type: Literal["add_tag"]
    tag_id: UUID
    target: Target | None = Field(default=None, description="Default: the trigger's subject")


class RemoveTag(Strict):
    type: Literal["remove_tag"]
    tag_id: UUID
    target: Target | None = None


class SetCustomField(Strict):
    type: Literal["set_custom_field"]
    key: str = Field(min_length=1, max_length=64)
    value: Any = Field(description="Checked against the field's type when the rule runs")
    target: Literal["contact", "deal"] | None = None


class SetStatus(Strict):
    type: Literal["set_conversation_status"]
    status: Literal["open", "pending", "resolved"]


class SetPriority(Strict):
    type: Literal["set_conversation_priority"]
    priority: Literal["low", "medium", "high", "urgent"] | None


class SendMessage(Strict):
    """Text, or a WhatsApp template (the way back into a conversation past its window)."""

    type: Literal["send_message"]
    text: str | None = Field(default=None, min_length=1, max_length=4096)
    template: TemplateSend | None = None

    @model_validator(mode="after")
    def _one_of_them(self) -> SendMessage:
        if (self.text is None) == (self.template is None):
            raise ValueError("send_message takes text or a template, one of them")
        return self


class AddNote(Strict):
    type: Literal["add_note"]
    body: str = Field(min_length=1, max_length=20000)
    target: Target | None = None


class CreateTask(Strict):
    type: Literal["create_task"]
    title: str = Field(min_length=1, max_length=500)
    due_in_minutes: int | None = Field(default=None, ge=0, le=525600)
    priority: Literal["low", "medium", "high", "urgent"] = "medium"
    assignee_id: UUID | None = None


class MoveDeal(Strict):
    type: Literal["move_deal_stage"]
    stage_id: UUID


class SendWebhook(Strict):
    type: Literal["send_webhook"]
    endpoint_id: UUID


class Stop(Strict):
    type: Literal["stop"]


class StartBotFlow(Strict):
    """Starts the flow's published version in the conversation (shared/bots), after the
    rule's changes commit: a `bot.start_requested` event for the bots consumer."""

    type: Literal["start_bot_flow"]
    flow_id: UUID


ACTION_MODELS = (
    Assign,
    AddTag,
    RemoveTag,
    SetCustomField,
    SetStatus,
    SetPriority,
    SendMessage,
    AddNote,
    CreateTask,
    MoveDeal,
    SendWebhook,
    Stop,
    StartBotFlow,
)
Action = Annotated[
    Assign
    | AddTag
    | RemoveTag
    | SetCustomField
    | SetStatus
    | SetPriority
    | SendMessage
    | AddNote
    | CreateTask
    | MoveDeal
    | SendWebhook
    | Stop
    | StartBotFlow,
    Field(discriminator="type"),
]
Actions = Annotated[list[Action], Field(min_length=1, max_length=20)]
ACTIONS: TypeAdapter[list[Action]] = TypeAdapter(Actions)

# The record an action needs, where it needs one the trigger must bring.
_NEEDS = {
    "assign": "conversation",
    "set_conversation_status": "conversation",
    "set_conversation_priority": "conversation",
    "send_message": "conversation",
    "move_deal_stage": "deal",
    "start_bot_flow": "conversation",
}


def parse_actions(raw: Any) -> list[Action]:
    """Stored actions as models; a 422 naming the first problem. A row written past the
    function (PostgREST) can hold anything."""
    try:
        return ACTIONS.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = "actions" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]
        )
        raise _refuse(place, first["msg"]) from exc


def _refuse(place: str, message: str) -> Unprocessable:
    text = f"{place}: {message}"
    return Unprocessable(text, details=[{"field": place, "message": message}])


def target_of(trigger: str, action: Action) -> str | None:
    """The record the action applies to."""
    if isinstance(action, AddTag | RemoveTag | AddNote | SetCustomField):
        if action.target is not None:
            return action.target
        if isinstance(action, SetCustomField):
            return next((n for n in records_of(trigger) if n in ("contact", "deal")), None)
        return subject(trigger, taggable=True)
    return _NEEDS.get(action.type)


async def check_actions(
    *, conn: Connection, organization_id: UUID, trigger: str, actions: list[Action]
) -> None:
    """Every action fits the trigger and names rows of this organization; else a 422 saying
    which. `conn` reads past RLS (a manager cannot see webhook endpoints), so each query
    names the organization."""
    records = records_of(trigger)
    for index, action in enumerate(actions):
        place = f"actions[{index}]"
        target = target_of(trigger, action)
        if target is not None and target not in records:
            raise _refuse(
                place,
                f"{action.type} needs a {target}; a {trigger} rule has {', '.join(records)}",
            )
        if isinstance(action, Assign) and (action.method == "user") != (action.user_id is not None):
            raise _refuse(place, "user_id goes with method user, and only with it")
        user = action.user_id if isinstance(action, Assign) else None
        if isinstance(action, CreateTask):
            user = action.assignee_id
        if user is not None and not await conn.fetchval(
            "select exists (select 1 from public.organization_members"
            " where organization_id = $1 and user_id = $2)",
            organization_id,
            user,
        ):
            raise _refuse(place, f"no member {user} in this organization")
        await _check_row(conn, organization_id, place, action)
        template = action.template if isinstance(action, SendMessage) else None
        if template is not None and not await conn.fetchval(
            "select exists (select 1 from public.whatsapp_templates"
            " where organization_id = $1 and name = $2 and language = $3)",
            organization_id,
            template.name,
            template.language,
        ):
            raise _refuse(place, f"no WhatsApp template {template.name} ({template.language})")
        if (
            isinstance(action, SetCustomField)
            and target is not None
            and not await conn.fetchval(
                "select exists (select 1 from public.custom_field_definitions"
                " where organization_id = $1 and entity::text = $2 and key = $3)",
                organization_id,
                target,
                action.key,
            )
        ):
            raise _refuse(place, f"no {target} custom field {action.key!r}")


_ROWS: dict[type, tuple[str, str, str]] = {
    AddTag: ("tag_id", "public.tags", "tag"),
    RemoveTag: ("tag_id", "public.tags", "tag"),
    MoveDeal: ("stage_id", "public.stages", "stage"),
    SendWebhook: ("endpoint_id", "public.webhook_endpoints", "webhook endpoint"),
    StartBotFlow: ("flow_id", "public.bot_flows", "bot flow"),
}


async def _check_row(conn: Connection, organization_id: UUID, place: str, action: Action) -> None:
    spec = _ROWS.get(type(action))
    if spec is None:
        return
    attribute, table, what = spec
    wanted = getattr(action, attribute)
    if not await conn.fetchval(
        f"select exists (select 1 from {table} where organization_id = $1 and id = $2)",
        organization_id,
        wanted,
    ):
        raise _refuse(f"{place}.{attribute}", f"no {what} {wanted} in this organization")


def describe(trigger: str, action: Action) -> dict[str, Any]:
    """An action as a dry run shows it: what it would do, to which record."""
    shown = action.model_dump(mode="json")
    if (target := target_of(trigger, action)) is not None:
        shown["applies_to"] = target
    return shown


__all__ = [
    "ACTIONS",
    "TAGGABLE",
    "Action",
    "Actions",
    "check_actions",
    "describe",
    "parse_actions",
    "target_of",
]
