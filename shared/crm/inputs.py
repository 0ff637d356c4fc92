"""Value types for CRM input, normalized the way the database stores them.

The database checks the same rules again (PostgREST writes never pass through
here); normalizing first turns "+1 415 555 0123" or "HTTPS://WWW.Acme.com/x"
into what a caller meant instead of a refusal.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

import phonenumbers
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, EmailStr, Field

from shared.channels.registry import ChannelName

Channel = ChannelName


def _phone(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("must be an international phone number, e.g. +14155550123") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError("is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_HOST = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


def _domain(value: str) -> str:
    text = value.strip().lower()
    host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    host = host.removeprefix("www.")
    if len(host) > 253 or not _HOST.match(host):
        raise ValueError("must be a web domain, e.g. acme.com")
    return host


def _color(value: str) -> str:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        raise ValueError("must be a hex color, e.g. #22c55e")
    return value.lower()


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


Phone = Annotated[str, AfterValidator(_phone)]
Email = Annotated[EmailStr, AfterValidator(str.lower)]
Domain = Annotated[str, AfterValidator(_domain)]
Color = Annotated[str, AfterValidator(_color)]
TagName = Annotated[str, BeforeValidator(_strip), Field(min_length=1, max_length=50)]
# a tag by name (created when new) or by id
TagRefs = Annotated[list[TagName], Field(max_length=100)]
# custom field values; the database checks them against the organization's definitions
CustomFields = Annotated[dict[str, Any], Field(max_length=200)]


class Strict(BaseModel):
    """Input models refuse fields they do not know: a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


def changes(model: BaseModel) -> dict[str, Any]:
    """The fields the caller actually sent (PATCH semantics)."""
    return {name: getattr(model, name) for name in model.model_fields_set}


def fields_of(model: BaseModel) -> dict[str, Any]:
    """Every field, defaults included (a create), nested models left as models."""
    return {name: getattr(model, name) for name in type(model).model_fields}
