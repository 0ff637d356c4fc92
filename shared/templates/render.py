"""Rendering the organization's text templates and quick replies: jinja2's sandbox.

A template is user input, so it runs in SandboxedEnvironment (no attribute access to
dunders or internals, no calls into Python objects we did not hand it) with
StrictUndefined: a variable the context lacks is an error unless the template gives
a default (`{{ contact.name | default("there") }}`). The context holds plain data
only — dicts, strings, numbers — never a model or a connection.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.meta import find_undeclared_variables
from jinja2.sandbox import SandboxedEnvironment

from shared.errors import Unprocessable

# Text, not HTML: nothing is escaped. Blocks keep their newlines as written.
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

# The names a template may use at its top level.
ROOTS = ("contact", "agent", "conversation", "organization", "values")


def check(source: str, *, field: str = "body") -> None:
    """Unprocessable naming the line and problem when `source` is not a valid template."""
    try:
        _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise Unprocessable(
            f"{field}: template syntax error on line {exc.lineno}: {exc.message}",
            code="invalid_template",
            details=[{"field": field, "line": exc.lineno, "message": exc.message}],
        ) from exc


def variables(source: str, *, field: str = "body") -> set[str]:
    """The top-level names `source` uses (`contact`, `agent`, …); Unprocessable when it
    does not parse."""
    check(source, field=field)
    return set(find_undeclared_variables(_ENV.parse(source)))


def is_template(text: str) -> bool:
    """Whether `text` holds any template syntax at all (plain text renders as itself)."""
    return any(mark in text for mark in ("{{", "{%", "{#"))


@lru_cache(maxsize=512)
def _compiled(source: str) -> Template:
    # Compiling is the costly part; a campaign renders one source for every recipient.
    return _ENV.from_string(source)


def render(source: str, context: dict[str, Any]) -> str:
    """The template filled from `context`; Unprocessable naming a missing variable or a
    refused operation (never a crash, never Python's own objects)."""
    try:
        template = _compiled(source)
    except TemplateSyntaxError:
        check(source)  # raises, naming the line
        raise
    try:
        return template.render({name: context.get(name, {}) for name in ROOTS})
    except SecurityError as exc:
        raise Unprocessable(
            f"The template is not allowed to do that: {exc}", code="template_refused"
        ) from exc
    except UndefinedError as exc:
        raise Unprocessable(
            f"The template needs a value it was not given: {exc.message}."
            ' Give it a default: {{ name | default("…") }}',
            code="template_variable_missing",
        ) from exc
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise Unprocessable(f"The template failed: {exc}", code="template_failed") from exc


def contact_context(contact: dict[str, Any]) -> dict[str, Any]:
    """A contact row as templates see it: its fields, custom fields under `custom`."""
    name = contact.get("name")
    first = name.split()[0] if isinstance(name, str) and name.strip() else None
    context = {
        "name": name,
        "first_name": first,
        "email": contact.get("email"),
        "phone": contact.get("phone"),
        "custom": dict(contact.get("custom_fields") or {}),
    }
    # a field without a value is missing, so that `default(...)` applies
    return {k: v for k, v in context.items() if v is not None}
