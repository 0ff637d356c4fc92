"""A flow's variables: their names and types, the built-ins every session has, and
`{{ name }}` in texts (what a text reads, and the text with the values put in).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

VARIABLE = r"^[a-z][a-z0-9_]{0,62}$"

VariableType = Literal["text", "number", "boolean", "date"]
# Set for every session when it starts, from the contact and the conversation.
BUILTINS: dict[str, VariableType] = {
    "contact_name": "text",
    "contact_phone": "text",
    "contact_email": "text",
    "channel": "text",
}
_READS = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")


def reads_of(text: str | None) -> set[str]:
    """The variables a text interpolates."""
    return set(_READS.findall(text or ""))


def interpolate(text: str, variables: dict[str, Any], escape: Callable[[str], str] = str) -> str:
    """`{{ name }}` replaced by the variable (nothing when unset), through `escape`."""

    def value(match: re.Match[str]) -> str:
        found = variables.get(match.group(1))
        return "" if found is None else escape(str(found))

    return _READS.sub(value, text)
