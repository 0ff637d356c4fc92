"""One CSV record → the values it would store, or the reason it cannot be stored.

- E-mail: trimmed and lowercased (the database stores addresses in lower case),
  then validated by email-validator; a plain ASCII address (`name@host.tld`) is
  taken by a pattern first, which accepts nothing email-validator refuses.
- Phone: a number already in E.164 (`+14155550123`, the database's own form) is
  kept as written; any other form is parsed by phonenumbers with the import's
  default region and must be a possible number.
- Custom fields: the text is turned into the value the field's type stores
  (numbers, booleans, lists of options); what cannot be turned is a row error
  worded as the database words it. The database checks every value again when
  the row is merged (app.clean_custom_fields), and a refusal there is a row error too.
- An empty cell sets nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from shared.imports.jobs import Entity
from shared.imports.mapping import STANDARD, FieldDef, Mapping, custom_key

Row = tuple[Any, ...]  # the staged columns after (job_id, line, organization_id)

STAGED_COLUMNS = (
    "job_id",
    "line",
    "organization_id",
    "name",
    "email",
    "phone",
    "domain",
    "company",
    "company_domain",
    "custom_fields",
    "raw",
    "error",
)
# the standard targets staged as they are (first_name and last_name make `name`)
_STAGED = ("name", "email", "phone", "domain", "company", "company_domain")

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}"
)
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,63}")
_TRUE = {"true", "yes", "y", "1", "on", "x"}
_FALSE = {"false", "no", "n", "0", "off"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class RowError(ValueError):
    pass


def email(value: str) -> str:
    text = value.strip().lower()
    if _PLAIN_EMAIL.fullmatch(text) and len(text) <= 320:
        return text
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise RowError(f"email: {exc}") from exc


def phone(value: str, region: str | None) -> str:
    text = value.strip()
    if _E164.fullmatch(text):
        return text
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise RowError(f"phone: {text!r} is not a phone number ({exc})") from exc
    if not phonenumbers.is_possible_number(number):
        raise RowError(f"phone: {text!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def domain(value: str) -> str:
    text = value.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text).split("/", 1)[0].split(":", 1)[0]
    text = text.removeprefix("www.")
    if len(text) > 253 or not _HOST.fullmatch(text):
        raise RowError(f"domain: {value.strip()!r} is not a web domain, e.g. acme.com")
    return text


def _custom(field: FieldDef, region: str | None) -> Callable[[str], Any]:
    """The converter of one custom field: text → the JSON value its type stores."""
    where = f"custom_fields.{field.key}"

    def number(text: str) -> Any:
        cleaned = text.replace(" ", "")
        if "," in cleaned and "." not in cleaned:
            cleaned = cleaned.replace(",", ".")  # a decimal comma
        try:
            value = float(cleaned)
        except ValueError:
            raise RowError(f"{where}: must be a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise RowError(f"{where}: must be a number")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value

    def boolean(text: str) -> bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise RowError(f"{where}: must be true or false")

    def choice(text: str) -> str:
        if field.options and text not in field.options:
            raise RowError(f"{where}: must be one of {json.dumps(field.options)}")
        return text

    def choices(text: str) -> list[str]:
        sep = "|" if "|" in text else ";" if ";" in text else ","
        values = [v.strip() for v in text.split(sep) if v.strip()]
        bad = [v for v in values if field.options and v not in field.options]
        if bad:
            raise RowError(f"{where}: must be a list of options from {json.dumps(field.options)}")
        return values

    def date(text: str) -> str:
        if not _DATE.fullmatch(text):
            raise RowError(f"{where}: must be a date as YYYY-MM-DD")
        return text

    def as_phone(text: str) -> str:
        try:
            return phone(text, region)
        except RowError as exc:
            raise RowError(f"{where}: {exc}") from None

    def as_email(text: str) -> str:
        try:
            return email(text)
        except RowError as exc:
            raise RowError(f"{where}: {exc}") from None

    converters: dict[str, Callable[[str], Any]] = {
        "number": number,
        "boolean": boolean,
        "select": choice,
        "multiselect": choices,
        "date": date,
        "phone": as_phone,
        "email": as_email,
    }
    return converters.get(field.type, str)


class Normalizer:
    """Turns records into staged rows for one import (its mapping, fields and region)."""

    def __init__(
        self, *, entity: Entity, mapping: Mapping, fields: list[FieldDef], region: str | None
    ) -> None:
        self.entity = entity
        self.width = len(mapping.header)
        by_key = {f.key: f for f in fields}
        standard = set().union(*STANDARD.values())
        self.plain: list[tuple[int, int, Callable[[str], Any]]] = []  # (column, slot, convert)
        self.custom: list[tuple[int, str, Callable[[str], Any]]] = []  # (column, key, convert)
        self.first = self.last = None
        region_phone: Callable[[str], str] = lambda text: phone(text, region)  # noqa: E731
        convert: dict[str, Callable[[str], Any]] = {
            "email": email,
            "phone": region_phone,
            "domain": domain,
            "company_domain": domain,
        }
        for column, target in mapping.targets.items():
            if target == "first_name":
                self.first = column
            elif target == "last_name":
                self.last = column
            elif target in standard:
                self.plain.append((column, _STAGED.index(target), convert.get(target, str.strip)))
            else:
                key = custom_key(target)
                self.custom.append((column, key, _custom(by_key[key], region)))

    def missing(self, values: list[Any]) -> str | None:
        """Why a row without errors still cannot be stored: it lacks what a record needs."""
        if self.entity == "companies":
            return None if values[0] is not None else "name: a company needs a name"
        if values[0] is None and values[1] is None and values[2] is None:
            return "the row has no name, e-mail or phone"
        return None

    def row(self, fields: list[str]) -> tuple[list[Any], dict[str, Any], str | None]:
        """(the six staged standard values, custom fields, error or None)."""
        values: list[Any] = [None] * len(_STAGED)
        custom: dict[str, Any] = {}
        problems: list[str] = []
        if len(fields) > self.width:
            problems.append(f"the record has {len(fields)} fields, the header {self.width}")
        width = len(fields)
        for column, slot, convert in self.plain:
            if column < width and (text := fields[column].strip()):
                try:
                    values[slot] = convert(text)
                except RowError as exc:
                    problems.append(str(exc))
        for column, key, convert in self.custom:
            if column < width and (text := fields[column].strip()):
                try:
                    custom[key] = convert(text)
                except RowError as exc:
                    problems.append(str(exc))
        if self.first is not None or self.last is not None:
            parts = [
                fields[c].strip()
                for c in (self.first, self.last)
                if c is not None and c < width and fields[c].strip()
            ]
            if parts and values[0] is None:
                values[0] = " ".join(parts)
        return values, custom, "; ".join(problems) if problems else None
