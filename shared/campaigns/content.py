"""What each recipient of a campaign receives: its text or template values filled with
the recipient's contact by the sandboxed renderer (shared/templates/render.py).

A campaign's text and its WhatsApp template values may use `{{ contact.name }}`,
`{{ contact.custom.plan }}`, `{{ contact.first_name | default("there") }}` and
`{{ organization.name }}`. The sources are checked when the campaign is created (a
syntax error or a name other than those is a 422 naming the field); a value a
contact lacks, without a default, fails that recipient with the reason, never the
campaign. A text campaign is free-form, so the channel's reply window applies per
recipient: on WhatsApp a contact who has not written in 24 hours fails with
`outside_window` without any provider call (a template campaign reaches them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.channels.base import Channel
from shared.channels.whatsapp.templates import MediaParameter, TemplateSend, Values, prepare_send
from shared.errors import Unprocessable
from shared.templates import render

# The names a campaign's sources may use: there is no agent or conversation yet.
ROOTS = frozenset({"contact", "organization"})


@dataclass(frozen=True)
class Filled:
    """One recipient's message: the text the inbox shows, its type, the send options."""

    body: str
    content_type: str
    options: dict[str, Any]


def _sources(send: TemplateSend) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for part, values in (("header", send.header), ("body", send.body)):
        if isinstance(values, list):
            found += [(f"template.{part}[{i}]", v) for i, v in enumerate(values)]
        elif isinstance(values, dict):
            found += [(f"template.{part}.{k}", v) for k, v in values.items()]
    return found


def validate(*, text: str | None, send: TemplateSend | None) -> None:
    """Unprocessable naming the field whose template does not parse or uses a name a
    campaign cannot fill."""
    sources = [("text", text)] if text is not None else _sources(send) if send else []
    for field, source in sources:
        unknown = render.variables(source, field=field) - ROOTS
        if unknown:
            raise Unprocessable(
                f"{field}: a campaign fills only contact and organization variables,"
                f" not {', '.join(sorted(unknown))}",
                code="invalid_template",
                details=[{"field": field, "unknown": sorted(unknown)}],
            )


def _fill_values(values: MediaParameter | Values | None, context: dict[str, Any]) -> Any:
    if isinstance(values, list):
        return [render.render(v, context) if render.is_template(v) else v for v in values]
    if isinstance(values, dict):
        return {
            k: render.render(v, context) if render.is_template(v) else v for k, v in values.items()
        }
    return values


@dataclass(frozen=True)
class Content:
    """A campaign's content, prepared once per batch and filled per recipient."""

    channel: Channel
    text: str | None
    template: dict[str, Any] | None  # the stored WhatsApp template
    send: TemplateSend | None
    organization: dict[str, Any]

    def fill(
        self, *, contact: dict[str, Any], last_inbound_at: datetime | None, now: datetime
    ) -> Filled:
        """The recipient's message; Unprocessable (the recipient's failure) when a value
        is missing, a template value ends up empty, or the reply window is closed."""
        context = {"contact": render.contact_context(contact), "organization": self.organization}
        if self.send is not None and self.template is not None:
            send = self.send.model_copy(
                update={
                    "header": _fill_values(self.send.header, context),
                    "body": _fill_values(self.send.body, context),
                }
            )
            graph, shown = prepare_send(self.template, send)
            return Filled(shown, "template", {"template": graph})
        assert self.text is not None
        options = self.channel.window_options(last_inbound_at, now)
        body = render.render(self.text, context) if render.is_template(self.text) else self.text
        return Filled(body, "text", options)
