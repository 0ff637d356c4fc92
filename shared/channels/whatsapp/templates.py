"""WhatsApp message templates through the Graph API: list (paged), submit for
approval, check a send's parameters against a template, and the send payload.

A template's components are Meta's: HEADER (format TEXT, IMAGE, VIDEO or DOCUMENT),
BODY, FOOTER and BUTTONS; its variables positional ({{1}}) or, with
parameter_format NAMED, named ({{first_name}}).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from shared.channels.answers import accepted_id, json_body, unexpected
from shared.channels.base import Account
from shared.channels.http import ProviderClient
from shared.channels.meta.graph import GRAPH_ERRORS, MetaSettings
from shared.errors import Unprocessable

POSITIONAL = re.compile(r"\{\{\s*(\d+)\s*\}\}")
NAMED = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
MEDIA_FORMATS = {"IMAGE": "image", "VIDEO": "video", "DOCUMENT": "document"}
FIELDS = "id,name,language,category,status,components,parameter_format,rejected_reason"
MAX_PAGES = 100  # 100 × 100 templates: far beyond Meta's per-account limit


class GraphTemplate(BaseModel):
    """A template as GET /{waba_id}/message_templates lists it."""

    model_config = ConfigDict(extra="ignore")
    id: str
    name: str
    language: str
    category: str
    status: str
    components: list[dict[str, Any]] = Field(default_factory=list)
    parameter_format: Literal["POSITIONAL", "NAMED"] = "POSITIONAL"
    rejected_reason: str | None = None


class NewTemplate(BaseModel):
    """A template to submit for approval (POST /{waba_id}/message_templates)."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = Field(min_length=2, max_length=15)
    category: Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
    parameter_format: Literal["POSITIONAL", "NAMED"] = "POSITIONAL"
    components: list[dict[str, Any]] = Field(min_length=1, max_length=10)


class MediaParameter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["image", "video", "document"]
    link: HttpUrl
    filename: str | None = Field(default=None, max_length=240)


Values = list[str] | dict[str, str]


class TemplateSend(BaseModel):
    """Which template to send and its parameter values: a list for positional
    variables ({{1}}, {{2}} in order), an object for named ones."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    language: str = Field(min_length=2, max_length=15)
    # a media header's {"type", "link"} first: it is a dict of strings too
    header: MediaParameter | Values | None = Field(default=None, union_mode="left_to_right")
    body: Values = Field(default_factory=list)


def _auth(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.secret('access_token')}"}


def _waba(account: Account) -> str:
    waba = account.settings.get("waba_id")
    if not waba:
        raise Unprocessable("This WhatsApp account has no waba_id", code="no_waba_id")
    return str(waba)


async def list_templates(client: ProviderClient, account: Account) -> list[GraphTemplate]:
    """Every template of the account's WhatsApp Business Account, following
    paging.next until Graph gives none."""
    url: str | None = f"{MetaSettings.current().graph_url}/{_waba(account)}/message_templates"
    params: dict[str, Any] | None = {"fields": FIELDS, "limit": 100}
    templates: list[GraphTemplate] = []
    for _ in range(MAX_PAGES):
        if url is None:
            break
        response = await client.call(
            "GET", url, errors=GRAPH_ERRORS, params=params, headers=_auth(account)
        )
        body = json_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise unexpected(response, "a data list")
        templates.extend(GraphTemplate.model_validate(item) for item in body["data"])
        paging = body.get("paging") or {}
        # paging.next is the whole next URL (cursor included); absent on the last page
        url, params = paging.get("next"), None
    return templates


async def submit_template(
    client: ProviderClient, account: Account, template: NewTemplate
) -> dict[str, Any]:
    """Submit for approval; Graph answers {"id", "status", "category"}."""
    response = await client.call(
        "POST",
        f"{MetaSettings.current().graph_url}/{_waba(account)}/message_templates",
        errors=GRAPH_ERRORS,
        json=template.model_dump(exclude_none=True),
        headers=_auth(account),
    )
    template_id, body = accepted_id(response, "id")
    return {
        "id": template_id,
        "status": body.get("status", "PENDING"),
        "category": body.get("category"),
    }


# ---- checking a send against the template ---------------------------------------------------


def variables(text: str | None, parameter_format: str) -> list[str]:
    """The template's variables in the order Graph takes their values: {{1}}, {{2}} … by
    number, named ones in order of first use."""
    if not text:
        return []
    if parameter_format == "NAMED":
        return list(dict.fromkeys(NAMED.findall(text)))
    return sorted(set(POSITIONAL.findall(text)), key=int)


def _component(components: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in components if str(c.get("type", "")).upper() == kind), None)


def _check_values(part: str, wanted: list[str], given: Values | None, fmt: str) -> dict[str, str]:
    """The values by variable name; Unprocessable naming what is missing or extra."""
    given = [] if given is None else given
    if fmt == "NAMED":
        if not isinstance(given, dict):
            raise Unprocessable(
                f"template.{part}: this template's variables are named: send an object"
                f" with {', '.join(wanted) or 'no keys'}",
                code="template_parameters",
            )
        missing, extra = set(wanted) - set(given), set(given) - set(wanted)
        if missing or extra:
            raise Unprocessable(
                f"template.{part}: missing {sorted(missing)}, unknown {sorted(extra)}",
                code="template_parameters",
            )
        values = dict(given)
    else:
        if not isinstance(given, list):
            raise Unprocessable(
                f"template.{part}: this template's variables are positional: send a list",
                code="template_parameters",
            )
        if len(given) != len(wanted):
            raise Unprocessable(
                f"template.{part}: the template has {len(wanted)} variable(s),"
                f" {len(given)} value(s) were given",
                code="template_parameters",
            )
        values = dict(zip(wanted, given, strict=True))
    if empty := [k for k, v in values.items() if not v.strip()]:
        raise Unprocessable(f"template.{part}: empty value for {empty}", code="template_parameters")
    return values


def _parameters(values: dict[str, str], fmt: str) -> list[dict[str, Any]]:
    named = fmt == "NAMED"
    return [
        {"type": "text", "text": v} | ({"parameter_name": k} if named else {})
        for k, v in values.items()
    ]


def _fill(text: str, values: dict[str, str], fmt: str) -> str:
    pattern = NAMED if fmt == "NAMED" else POSITIONAL
    return pattern.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def prepare_send(template: dict[str, Any], send: TemplateSend) -> tuple[dict[str, Any], str]:
    """Graph's `template` object for a send, and the text the inbox shows for it.

    `template` is the stored row. Unprocessable (before any provider call) when the
    template is not approved or the values do not fit its variables and header."""
    if template["status"] != "APPROVED":
        raise Unprocessable(
            f"Template {template['name']} ({template['language']}) is {template['status']};"
            " only APPROVED templates can be sent",
            code="template_not_approved",
        )
    fmt, components = template["parameter_format"], template["components"]
    parts: list[dict[str, Any]] = []
    header = _component(components, "HEADER")
    header_format = str((header or {}).get("format", "TEXT")).upper()
    if header is None or header_format == "LOCATION":
        if send.header is not None:
            raise Unprocessable(
                "template.header: this template has no header variables", code="template_parameters"
            )
    elif header_format in MEDIA_FORMATS:
        media = send.header
        kind = MEDIA_FORMATS[header_format]
        if not isinstance(media, MediaParameter) or media.type != kind:
            raise Unprocessable(
                f"template.header: this template's header is {kind}: send"
                f' {{"type": "{kind}", "link": "https://…"}}',
                code="template_parameters",
            )
        item: dict[str, Any] = {"link": str(media.link)}
        if media.filename and kind == "document":
            item["filename"] = media.filename
        parts.append({"type": "header", "parameters": [{"type": kind, kind: item}]})
    else:
        if isinstance(send.header, MediaParameter):
            raise Unprocessable(
                "template.header: this template's header is text", code="template_parameters"
            )
        wanted = variables(header.get("text"), fmt)
        values = _check_values("header", wanted, send.header, fmt)
        if values:
            parts.append({"type": "header", "parameters": _parameters(values, fmt)})
    body = _component(components, "BODY") or {}
    body_values = _check_values("body", variables(body.get("text"), fmt), send.body, fmt)
    if body_values:
        parts.append({"type": "body", "parameters": _parameters(body_values, fmt)})
    graph = {"name": template["name"], "language": {"code": template["language"]}}
    if parts:
        graph["components"] = parts
    return graph, _fill(str(body.get("text") or template["name"]), body_values, fmt)
