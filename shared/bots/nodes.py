"""A flow's node kinds: each one's settings model, its output ports (an edge leaves a
node through one), whether it waits, and the variables it reads and writes.

Texts may read variables as `{{ name }}` (shared.bots.variables). `KINDS` maps a
node's `kind` to its model, so parsing goes node by node (shared.bots.validate).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from shared.bots.variables import VARIABLE, reads_of

NODE_ID = r"^[A-Za-z0-9_-]{1,64}$"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    ports: ClassVar[tuple[str, ...]] = ("next",)
    # Waits for the customer or the clock: cycles must pass through one of these.
    waits: ClassVar[bool] = False

    id: str = Field(pattern=NODE_ID)
    label: str | None = Field(default=None, max_length=200)

    def reads(self) -> set[str]:
        return set()

    def writes(self) -> set[str]:
        return set()


class Start(Settings):
    kind: Literal["start"]


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(default=None, max_length=72)


class Media(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: HttpUrl
    type: Literal["image", "audio", "video", "document"]


class SendMessage(Settings):
    """Text, buttons (up to 3) or a list (up to 10), or media with a caption. Where the
    channel has no buttons or lists, the options are sent as a numbered text."""

    kind: Literal["send_message"]
    text: str | None = Field(default=None, min_length=1, max_length=4096)
    buttons: list[Option] | None = Field(default=None, min_length=1, max_length=3)
    list_options: list[Option] | None = Field(default=None, min_length=1, max_length=10)
    list_button: str = Field(default="Choose", min_length=1, max_length=20)
    media: Media | None = None

    @model_validator(mode="after")
    def _something(self) -> SendMessage:
        if self.text is None and self.media is None:
            raise ValueError("a message needs text or media")
        if self.buttons and self.list_options:
            raise ValueError("buttons or a list, not both")
        if (self.buttons or self.list_options) and (self.media or not self.text):
            raise ValueError("buttons and lists go with text and no media")
        return self

    def reads(self) -> set[str]:
        return reads_of(self.text)


AskType = Literal["text", "number", "email", "phone", "date", "choice"]


class Ask(Settings):
    """A question; the answer, once valid, goes to `variable`. An invalid answer gets
    the retry prompt, up to `max_retries` times; then the `failed` port (or the end)."""

    ports: ClassVar[tuple[str, ...]] = ("next", "failed")
    waits: ClassVar[bool] = True
    kind: Literal["ask"]
    text: str = Field(min_length=1, max_length=4096)
    type: AskType = "text"
    variable: str = Field(pattern=VARIABLE)
    options: list[Option] | None = Field(default=None, min_length=1, max_length=10)
    min: float | None = None
    max: float | None = None
    max_length: int = Field(default=1000, ge=1, le=4096)
    retry_prompt: str = Field(
        default="Sorry, I did not understand that. Please try again.", min_length=1, max_length=1000
    )
    max_retries: int = Field(default=2, ge=0, le=10)

    @model_validator(mode="after")
    def _options(self) -> Ask:
        if (self.type == "choice") != (self.options is not None):
            raise ValueError("options go with type choice, and only with it")
        if (self.min is not None or self.max is not None) and self.type != "number":
            raise ValueError("min and max are for type number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        if self.options and len({o.id for o in self.options}) != len(self.options):
            raise ValueError("option ids repeat")
        return self

    def reads(self) -> set[str]:
        return reads_of(self.text) | reads_of(self.retry_prompt)

    def writes(self) -> set[str]:
        return {self.variable}


class Condition(Settings):
    """Filters in the filter language; all given must hold. `variables` filters the
    flow's variables as fields named `variables.<name>`."""

    ports: ClassVar[tuple[str, ...]] = ("true", "false")
    kind: Literal["condition"]
    contact: dict[str, Any] | None = None
    conversation: dict[str, Any] | None = None
    variables: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        if self.contact is None and self.conversation is None and self.variables is None:
            raise ValueError("a condition needs a contact, conversation or variables filter")
        return self

    def reads(self) -> set[str]:
        return _filter_fields(self.variables)


def _filter_fields(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = set()
        field = node.get("field")
        if isinstance(field, str) and field.startswith("variables."):
            found.add(field.removeprefix("variables."))
        for key in ("and", "or"):
            for child in node.get(key) or []:
                found |= _filter_fields(child)
        return found
    return set()


class SetVariable(Settings):
    """A variable (or, with `contact_field`, also the contact's custom field) set to a
    value: a literal, or a text reading other variables."""

    kind: Literal["set_variable"]
    variable: str | None = Field(default=None, pattern=VARIABLE)
    contact_field: str | None = Field(default=None, min_length=1, max_length=64)
    value: str | float | bool | None

    @model_validator(mode="after")
    def _target(self) -> SetVariable:
        if self.variable is None and self.contact_field is None:
            raise ValueError("set a variable, a contact_field, or both")
        return self

    def reads(self) -> set[str]:
        return reads_of(self.value) if isinstance(self.value, str) else set()

    def writes(self) -> set[str]:
        return {self.variable} if self.variable else set()


class Tag(Settings):
    kind: Literal["tag"]
    action: Literal["add", "remove"] = "add"
    tag: str = Field(min_length=1, max_length=64, description="The tag's name")
    target: Literal["contact", "conversation"] = "contact"


class Http(Settings):
    """A request to an external system, signed with a webhook endpoint's secret when
    `signing_endpoint_id` names one; the JSON answer is mapped into variables
    (`save`: variable → a dotted path in the answer)."""

    ports: ClassVar[tuple[str, ...]] = ("success", "failure")
    kind: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(min_length=8, max_length=2048, pattern=r"^https?://")
    body: dict[str, Any] | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=10)
    signing_endpoint_id: str | None = Field(default=None, max_length=64)
    save: dict[str, str] = Field(default_factory=dict, max_length=20)
    status_variable: str | None = Field(default=None, pattern=VARIABLE)

    @model_validator(mode="after")
    def _save(self) -> Http:
        for name, path in self.save.items():
            if not re.match(VARIABLE, name):
                raise ValueError(f"save: {name!r} is not a variable name")
            if not re.match(r"^[A-Za-z0-9_.-]{1,200}$", path):
                raise ValueError(f"save.{name}: {path!r} is not a dotted path")
        return self

    def reads(self) -> set[str]:
        return reads_of(self.url) | _reads_in(self.body)

    def writes(self) -> set[str]:
        # Only what every outcome sets: the mapped values exist after a success only.
        return {self.status_variable} if self.status_variable else set()


def _reads_in(value: Any) -> set[str]:
    if isinstance(value, str):
        return reads_of(value)
    if isinstance(value, dict):
        return set().union(*(_reads_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_reads_in(v) for v in value)) if value else set()
    return set()


class Wait(Settings):
    waits: ClassVar[bool] = True
    kind: Literal["wait"]
    seconds: int = Field(ge=1, le=7 * 86400)


class Handoff(Settings):
    """The conversation goes to a person: a given agent, or one chosen round-robin or
    balanced; the session ends handed off."""

    ports: ClassVar[tuple[str, ...]] = ()
    kind: Literal["handoff"]
    method: Literal["none", "user", "round_robin", "balanced"] = "none"
    user_id: str | None = None
    text: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _user(self) -> Handoff:
        if (self.method == "user") != (self.user_id is not None):
            raise ValueError("user_id goes with method user, and only with it")
        return self

    def reads(self) -> set[str]:
        return reads_of(self.text)


class End(Settings):
    ports: ClassVar[tuple[str, ...]] = ()
    kind: Literal["end"]


Node = Start | SendMessage | Ask | Condition | SetVariable | Tag | Http | Wait | Handoff | End
KINDS: dict[str, type[Settings]] = {
    "start": Start,
    "send_message": SendMessage,
    "ask": Ask,
    "condition": Condition,
    "set_variable": SetVariable,
    "tag": Tag,
    "http": Http,
    "wait": Wait,
    "handoff": Handoff,
    "end": End,
}
