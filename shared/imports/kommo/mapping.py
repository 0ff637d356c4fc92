"""Kommo's records as ConnectGain's: pure functions, no database, no network.

Custom field types map onto ConnectGain's; a type with no counterpart (an
address with parts, a tax id, a file, a catalog link …) becomes text holding a
readable rendering of the value, and the import reports it. Every value is
converted here to exactly what the database's custom field check accepts, so
a page is never refused for one odd value: a value that does not convert is
left out and reported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import phonenumbers

# Kommo's type → ConnectGain's
FIELD_TYPES: dict[str, str] = {
    "text": "text",
    "textarea": "text",
    "streetaddress": "text",
    "numeric": "number",
    "price": "number",
    "monetary": "number",
    "checkbox": "boolean",
    "select": "select",
    "radiobutton": "select",
    "multiselect": "multiselect",
    "date": "date",
    "birthday": "date",
    "date_time": "datetime",
    "url": "url",
    "multitext": "text",  # phones, e-mails, messengers: each value with its kind
}
ENTITY_OF = {"leads": "deal", "contacts": "contact", "companies": "company"}
MAX_TEXT = 10_000
# the database's own checks (custom field URLs, company domains)
URL = re.compile(r"^https?://[^\s/?#]+\S*$")
DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
WON, LOST = 142, 143


@dataclass(frozen=True)
class FieldDef:
    """One Kommo custom field as it is defined here."""

    kommo_id: int
    entity: str  # contact | company | deal
    key: str
    label: str
    type: str
    options: list[str] | None
    kommo_type: str
    code: str | None


def field_def(raw: dict[str, Any], kommo_entity: str) -> tuple[FieldDef, bool]:
    """The definition for a Kommo field, and whether its type had no counterpart."""
    kommo_type = str(raw.get("type") or "")
    mapped = FIELD_TYPES.get(kommo_type)
    options = None
    if mapped in ("select", "multiselect"):
        values = [
            str(e.get("value") or "").strip()[:100]
            for e in raw.get("enums") or []
            if isinstance(e, dict)
        ]
        options = list(dict.fromkeys(v for v in values if v))
        if not 1 <= len(options) <= 500:
            mapped, options = "text", None
    label = (str(raw.get("name") or "").strip() or f"Kommo field {raw['id']}")[:100]
    code = raw.get("code") if isinstance(raw.get("code"), str) else None
    return (
        FieldDef(
            kommo_id=int(raw["id"]),
            entity=ENTITY_OF[kommo_entity],
            key=f"kommo_{int(raw['id'])}",
            label=label,
            type=mapped or "text",
            options=options,
            kommo_type=kommo_type,
            code=code,
        ),
        mapped is None,
    )


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _render(value: Any) -> str:
    if isinstance(value, dict):
        parts = [f"{k}: {v}" for k, v in value.items() if v not in (None, "", [], {})]
        return ", ".join(parts)
    if isinstance(value, list):
        return ", ".join(_render(v) for v in value)
    return "" if value is None else str(value)


def field_value(definition: FieldDef, values: list[dict[str, Any]]) -> Any:
    """The stored value for a field's Kommo `values`, or None when nothing converts."""
    raw = [v.get("value") for v in values if isinstance(v, dict)]
    raw = [v for v in raw if v not in (None, "", [], {})]
    if not raw:
        return None
    first = raw[0]
    match definition.type:
        case "number":
            try:
                number = float(str(first).replace(",", "."))
            except ValueError:
                return None
            if not math.isfinite(number):
                return None
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        case "boolean":
            return first if isinstance(first, bool) else str(first).lower() in ("1", "true", "yes")
        case "select":
            return first if first in (definition.options or []) else None
        case "multiselect":
            chosen = [v for v in raw if v in (definition.options or [])]
            return chosen or None
        case "date":
            moment = _timestamp(first)
            return moment.date().isoformat() if moment else None
        case "datetime":
            moment = _timestamp(first)
            return moment.isoformat().replace("+00:00", "Z") if moment else None
        case "url":
            text = str(first).strip()
            if "://" not in text:
                text = f"https://{text}"
            return text if URL.match(text) and len(text) <= 2048 else None
    if definition.kommo_type == "multitext":
        text = "; ".join(
            f"{_render(v.get('value'))} ({v['enum_code']})"
            if v.get("enum_code")
            else _render(v.get("value"))
            for v in values
            if isinstance(v, dict) and v.get("value") not in (None, "")
        )
    elif definition.kommo_type == "smart_address":
        text = ", ".join(_render(v) for v in raw)
    else:
        text = "\n".join(_render(v) for v in raw)
    return text[:MAX_TEXT] or None


def custom_fields(
    record: dict[str, Any], fields: dict[int, FieldDef]
) -> tuple[dict[str, Any], list[str]]:
    """The record's custom_fields for ConnectGain, and the names of values left out."""
    stored: dict[str, Any] = {}
    dropped: list[str] = []
    for entry in record.get("custom_fields_values") or []:
        if not isinstance(entry, dict):
            continue
        definition = fields.get(int(entry.get("field_id") or 0))
        if definition is None:
            continue
        value = field_value(definition, entry.get("values") or [])
        if value is None:
            dropped.append(definition.label)
        else:
            stored[definition.key] = value
    return stored, dropped


def multitext(record: dict[str, Any], code: str) -> list[tuple[str, str | None]]:
    """The (value, enum code) pairs of the record's PHONE or EMAIL field."""
    found: list[tuple[str, str | None]] = []
    for entry in record.get("custom_fields_values") or []:
        if isinstance(entry, dict) and entry.get("field_code") == code:
            for v in entry.get("values") or []:
                if isinstance(v, dict) and isinstance(v.get("value"), str) and v["value"].strip():
                    found.append((v["value"].strip(), v.get("enum_code")))
    return found


def phone(value: str, region: str | None) -> str | None:
    """E.164, or None when it is not a valid number."""
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def email(value: str) -> str | None:
    text = value.strip().lower()
    local, _, domain = text.partition("@")
    ok = local and "." in domain and " " not in text and len(text) <= 320
    return text if ok else None


def first_phone(record: dict[str, Any], region: str | None) -> str | None:
    for value, _code in multitext(record, "PHONE"):
        if number := phone(value, region):
            return number
    return None


def first_email(record: dict[str, Any]) -> str | None:
    for value, _code in multitext(record, "EMAIL"):
        if address := email(value):
            return address
    return None


def domain(record: dict[str, Any]) -> str | None:
    """A company's web domain from its WEB field: the bare lowercase host."""
    for entry in record.get("custom_fields_values") or []:
        if isinstance(entry, dict) and entry.get("field_code") == "WEB":
            for v in entry.get("values") or []:
                text = str(v.get("value") or "").strip().lower() if isinstance(v, dict) else ""
                host = text.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
                host = host.removeprefix("www.")
                if DOMAIN.match(host) and len(host) <= 253:
                    return host
    return None


def embedded_ids(record: dict[str, Any], key: str) -> list[int]:
    items = (record.get("_embedded") or {}).get(key) or []
    if isinstance(items, dict):
        items = [items]
    main = [i for i in items if isinstance(i, dict) and i.get("is_main")]
    rest = [i for i in items if isinstance(i, dict) and not i.get("is_main")]
    return [int(i["id"]) for i in main + rest if isinstance(i.get("id"), int)]


def tags(record: dict[str, Any]) -> list[str]:
    names = [
        str(t.get("name") or "").strip()[:50].strip()
        for t in (record.get("_embedded") or {}).get("tags") or []
        if isinstance(t, dict)
    ]
    return list(dict.fromkeys(n for n in names if n))


def loss_reason(record: dict[str, Any]) -> str | None:
    reason = (record.get("_embedded") or {}).get("loss_reason")
    if isinstance(reason, list):
        reason = reason[0] if reason else None
    name = reason.get("name") if isinstance(reason, dict) else None
    return str(name)[:500] if name else None


def moment(value: Any) -> str | None:
    found = _timestamp(value) if value else None
    return found.isoformat() if found else None
